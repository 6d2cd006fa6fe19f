"""Identification beside the reader, on the other cores.

Identifying a closed flow (identify.py) needs only its samples, and no flow's facts depend
on another's, so closed flows are identified in chunks by worker processes while the
reader goes on reading: the reader and the parsers then run on two cores. The facts come
back in the order the flows were handed in, whatever process identified them, and are the
same facts: identify_job is a pure function of its job, and a test holds the parallel path
to the serial one's reports byte for byte.

It is automatic: workers start only once a capture has closed a chunk's worth of flows (a
small capture never pays for a process), only where a core is free for them, and never
inside a daemonic process (a Dask worker), which may not have children. They start on a
thread of their own: starting the fork server (a fresh interpreter importing
identification) takes about half a second, in which the reader identifies chunks itself
rather than wait. When the workers fall behind, the reader identifies chunks itself
rather than let samples pile up; at the end the workers take the chunks left from the
oldest on, a few at a time, and the reader from the newest back. While the workers would
otherwise wait (no closed flow to identify), they identify open flows whose samples stood
still through a batch (LookAhead): a flow that closes as it stood then needs no more work.
However identified, flows with the same facts share one facts object (SharedFacts): most
of a capture's flows repeat the facts of others.

A chunk's jobs travel to its worker, and its facts back, in files (ChunkFiles); through
the pool's pipes goes only their names. A pipe holds 64 KB, a chunk's jobs are hundreds
(~740 KB on the replayed corpus) and its facts tens. The pool's threads in the reader move
what crosses a pipe, a piece at a time, each piece waiting for the reader's busy thread to
let go of the interpreter lock (every 5 ms), and a worker whose facts did not fit into
the pipe waited for them: workers sat idle for a quarter to two fifths of the end of a
capture, 5-35 ms between chunks (0.1-0.2 ms with the files). Each distinct facts of a
chunk is sent once: the flows of a chunk mostly repeat a few.
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import os
import pickle
import shutil
import tempfile
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Generic, TypeVar

from flowscan.flows import FlowState, FlowTable
from flowscan.identify import FlowFacts, IdentifyJob, identify_job, job_of

T = TypeVar("T")
CHUNK = 256  # flows handed to a worker at once: small enough to keep it busy early
QUEUED_PER_WORKER = 4  # chunks waiting per worker before the reader identifies one itself
MAX_WORKERS = 4
ENV_WORKERS = "FLOWSCAN_WORKERS"
EXPECTED_CHUNKS = 4  # open flows, in chunks, that start the workers before any flow closes
PICKLED = pickle.HIGHEST_PROTOCOL
SHARED_FACTS = 4096  # distinct facts remembered; past that, the memory starts afresh
SHARED_MEMORY = "/dev/shm"  # where chunk files go, where there is one: memory, not a disk
# What a worker sends back for a chunk: each distinct facts pickled once, and for each
# flow in order, the index of its facts among those.
ChunkFacts = tuple[list[bytes], list[int]]


def default_workers() -> int:
    """One worker per core beyond the reader's, none in a daemonic process; the
    environment's FLOWSCAN_WORKERS (a number, 0 for none) decides instead where set."""
    if multiprocessing.current_process().daemon:
        return 0
    given = os.environ.get(ENV_WORKERS, "").strip()
    if given.isdigit():
        return min(MAX_WORKERS, int(given))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(MAX_WORKERS, cores - 1))


def _context() -> multiprocessing.context.BaseContext:
    """Workers forked from a server process that holds none of the reader's flows (it
    imports this module, and with it the package, ~45 MB, most of it numpy, which
    identification needs): forked from the reader, a worker would keep a private copy of
    every page of the reader's heap that the reader writes to after the fork."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def identify_chunk(jobs: list[IdentifyJob]) -> ChunkFacts:
    """In a worker: the facts of each flow of a chunk, pickled one by one, so that the
    reader can tell the facts it already holds by their bytes (SharedFacts) without
    unpickling them; equal pickles are sent once. The cyclic collector waits until the
    chunk is done (a fifth of the time otherwise, over objects that reference counting
    frees), then collects once if it is due."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        distinct: dict[bytes, int] = {}
        order = [distinct.setdefault(pickle.dumps(identify_job(job), PICKLED), len(distinct))
                 for job in jobs]
        return list(distinct), order
    finally:
        if was_enabled:
            gc.enable()


def identify_chunk_file(path: str) -> ChunkFacts | str:
    """In a worker: identify_chunk on the jobs in the file at `path` (ChunkFiles); the
    facts go into a file beside it, whose path is what the worker sends back (the facts
    themselves where that file cannot be written)."""
    jobs = ChunkFiles.take(path)
    assert isinstance(jobs, list)
    facts = identify_chunk(jobs)
    try:
        return ChunkFiles.put(f"{path}.facts", facts)
    except OSError:  # a full file system: the facts go through the pipe
        return facts


FOLDER_PREFIX = "flowscan-chunks-"
PID_MAX = 1 << 22  # the largest process number Linux gives (kernel.pid_max at most)


def _private_folder() -> str:
    """A new folder only this user may enter (mode 0700), named after this process: in
    shared memory where the system has one that takes it, else in the temporary folder
    (OSError where neither does). The folders left there by processes of this user that
    were killed outright go first."""
    prefix = f"{FOLDER_PREFIX}{os.getpid()}-"
    if os.path.isdir(SHARED_MEMORY):
        _remove_orphans(SHARED_MEMORY)
        with contextlib.suppress(OSError):
            return tempfile.mkdtemp(prefix=prefix, dir=SHARED_MEMORY)
    _remove_orphans(tempfile.gettempdir())
    return tempfile.mkdtemp(prefix=prefix)


def _remove_orphans(parent: str) -> None:
    """The chunk folders in `parent` that are this user's and whose process is gone: a
    process killed outright (SIGKILL, the out-of-memory killer, SIGTERM's default) runs
    no clean-up, and a job holds payload samples. A process that is alive (or a new one
    with the same number) keeps its folder; so does anything else."""
    with contextlib.suppress(OSError), os.scandir(parent) as entries:
        for entry in entries:
            owner = entry.name.removeprefix(FOLDER_PREFIX).partition("-")[0]
            if (not entry.name.startswith(FOLDER_PREFIX) or not owner.isascii()
                    or not owner.isdigit() or not 0 < int(owner) <= PID_MAX):
                continue
            with contextlib.suppress(OSError):
                if entry.stat(follow_symlinks=False).st_uid != os.getuid():
                    continue
                try:
                    os.kill(int(owner), 0)
                except ProcessLookupError:
                    shutil.rmtree(entry.path, ignore_errors=True)


class ChunkFiles:
    """The files that carry chunks' jobs to the workers and their facts back, rather than
    the pool's pipes (see above). In a folder of the reader's own (mode 0700, in shared
    memory where the system has it), each file removed by the process that reads it,
    the folder when the reader is done (or its Identifier is collected, or the process
    exits). A job holds payload samples: a folder left by a process killed outright is
    removed by the next scan that makes one (_remove_orphans)."""

    def __init__(self) -> None:
        self._folder: str | None = None
        self._written = 0
        self._remove: weakref.finalize[..., ChunkFiles] | None = None

    def write(self, jobs: list[IdentifyJob]) -> str:
        """The file holding `jobs`; OSError where it cannot be written."""
        if self._folder is None:
            self._folder = _private_folder()
            self._remove = weakref.finalize(self, shutil.rmtree, self._folder, True)
        self._written += 1
        return self.put(os.path.join(self._folder, str(self._written)), jobs)

    @staticmethod
    def put(path: str, value: object) -> str:
        """`value` pickled into a new file at `path`; OSError where it cannot be written
        (a full file system), and then no file."""
        try:
            with open(path, "xb") as out:
                out.write(pickle.dumps(value, PICKLED))
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(path)
            raise
        return path

    @staticmethod
    def take(path: str) -> object:
        """What the file at `path` holds; the file is gone once read."""
        with open(path, "rb") as given:
            data = given.read()
        os.unlink(path)
        return pickle.loads(data)

    def remove(self) -> None:
        if self._remove is not None:
            self._remove()


class SharedFacts:
    """One FlowFacts object for all the flows whose facts are the same. Most flows of a
    capture repeat the facts of others (on the replayed captures of the benchmark, 26,000
    flows have 380 different facts; a million one-packet flows, one): a flow's facts are
    a few hundred bytes of objects, so sharing them is most of what a closed flow holds,
    and taking facts already held back from a worker needs no unpickling. Facts are told
    apart by their pickled bytes: the same bytes unpickle to equal facts (different bytes
    for equal facts only cost a second copy). Shared facts must never be changed after
    identification; tlsopen.py, the one stage that adds to a flow's facts, takes a copy."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[bytes, FlowFacts] = {}

    def of(self, data: bytes, facts: FlowFacts | None = None) -> FlowFacts:
        """The facts pickled as `data` (given, where the caller has them unpickled)."""
        known = self._known.get(data)
        if known is None:
            if len(self._known) >= SHARED_FACTS:
                self._known.clear()
            known = self._known[data] = pickle.loads(data) if facts is None else facts
        return known

    def sent(self, sent: ChunkFacts | str) -> list[FlowFacts]:
        """The facts of a chunk's flows, in order, as a worker sent them back (or the file
        it wrote them to)."""
        if isinstance(sent, str):
            taken = ChunkFiles.take(sent)
            assert isinstance(taken, tuple)
            sent = taken
        distinct, order = sent
        known = [self.of(data) for data in distinct]
        return [known[index] for index in order]

    def identified(self, job: IdentifyJob) -> FlowFacts:
        """identify_job here, its facts shared."""
        facts = identify_job(job)
        return self.of(pickle.dumps(facts, PICKLED), facts)


def _started() -> None:
    """The first task of a pool: submitting it starts the worker processes."""


class _Starting:
    """A pool of worker processes started on a thread, so the reader goes on meanwhile;
    `pool` is None until they have started (and stays None if they could not)."""

    def __init__(self, workers: int) -> None:
        self.pool: ProcessPoolExecutor | None = None
        self._thread = threading.Thread(target=self._start, args=(workers,),
                                        name="identify-workers-start", daemon=True)
        self._thread.start()

    def _start(self, workers: int) -> None:
        try:
            pool = ProcessPoolExecutor(workers, mp_context=_context())
        except (RuntimeError, OSError):
            return
        try:
            pool.submit(_started)
        except (BrokenProcessPool, RuntimeError, OSError):
            pool.shutdown(wait=False, cancel_futures=True)
            return
        self.pool = pool

    def ready(self) -> bool:
        return not self._thread.is_alive()

    def wait(self) -> ProcessPoolExecutor | None:
        self._thread.join()
        return self.pool


def worth_sending(job: IdentifyJob) -> bool:
    """Whether a worker should identify this flow: any flow with a payload sample. Taking
    a flow's facts back costs the reader a dictionary lookup where it holds the same
    facts already (SharedFacts) and 4-11 us where it must unpickle them (with the cyclic
    collector paused, as it is during a scan), and sending its job about 1 us, where
    identifying it costs 14-30 us with one sample and more with each further one; a flow
    without payload has nothing to parse."""
    return bool(job[0][2])


class _Chunk(Generic[T]):
    """Flows in the order they were added; the light ones identified at once, the others
    by a worker (or here, when the workers are behind or gone)."""

    __slots__ = ("facts", "future", "items", "jobs", "shared")

    def __init__(self, shared: SharedFacts) -> None:
        self.items: list[T] = []
        self.facts: list[FlowFacts | None] = []  # None: not identified yet
        self.jobs: list[IdentifyJob] = []  # of the flows not identified yet, in order
        self.future: Future[ChunkFacts | str] | None = None
        self.shared = shared

    def add(self, item: T, job: IdentifyJob, facts: FlowFacts | None = None) -> None:
        self.items.append(item)
        if facts is not None:
            self.facts.append(facts)
        elif worth_sending(job):
            self.facts.append(None)
            self.jobs.append(job)
        else:
            self.facts.append(self.shared.identified(job))

    def done(self) -> bool:
        return not self.jobs or (self.future is not None and self.future.done())

    def fill(self, identified: list[FlowFacts]) -> None:
        found = iter(identified)
        self.facts = [f if f is not None else next(found) for f in self.facts]
        self.jobs = []

    def fill_pickled(self, sent: ChunkFacts | str) -> None:
        """The facts a worker sent back (or the file it wrote them to)."""
        self.fill(self.shared.sent(sent))

    def identify_here(self) -> None:
        self.fill([self.shared.identified(job) for job in self.jobs])


class Identifier(Generic[T]):
    """Identifies each flow handed to add() and hands (its item, its facts) to deliver, in
    the order the flows were added."""

    def __init__(self, deliver: Callable[[T, FlowFacts], None], workers: int | None = None,
                 chunk: int | None = None) -> None:
        self._deliver = deliver
        self._workers = default_workers() if workers is None else workers
        self._chunk_size = chunk or CHUNK
        self._shared = SharedFacts()
        self._filling: _Chunk[T] = _Chunk(self._shared)
        self._chunks: deque[_Chunk[T]] = deque()
        self._pool: ProcessPoolExecutor | None = None
        self._starting: _Starting | None = None
        self._last_flows = False
        self._sent: deque[_Chunk[T]] = deque()  # sent to a worker, from the oldest not done
        # At the end of a capture: the chunks not sent yet, oldest first (last_flows).
        self._unsent: deque[_Chunk[T]] = deque()
        self._files = ChunkFiles()  # where the workers' chunks go
        self._broken: ProcessPoolExecutor | None = None  # given up (_give_up)

    @property
    def workers(self) -> int:
        """The worker processes it may use (0: none, or none left)."""
        return self._workers

    def add(self, item: T, job: IdentifyJob, facts: FlowFacts | None = None) -> None:
        """A flow to identify, in the order flows are delivered: its job, or its facts
        where they are known already (LookAhead)."""
        filling = self._filling
        filling.add(item, job, facts)
        if len(filling.jobs) >= self._chunk_size or len(filling.items) >= 8 * self._chunk_size:
            self._filling = _Chunk(self._shared)
            self._chunks.append(filling)
            self._dispatch(filling)
            self._send_unsent()
            self._deliver_done()

    def expect(self, flows: int) -> None:
        """`flows` flows are open and will be handed in: once they would fill a few chunks,
        the workers start now, in the background, so that they are up when the flows
        close (all at once, at the end of a capture that never went idle)."""
        enough = flows >= EXPECTED_CHUNKS * self._chunk_size
        if enough and self._workers and self._starting is None:
            self._starting = _Starting(self._workers)

    def last_flows(self) -> None:
        """Every flow still open is handed in now, at the end of the capture: the reader has
        nothing else to do, so from here the chunks go to the workers, oldest first, as
        fast as they take them, and wait for them rather than be identified as they
        fill; finish() takes the ones still waiting, newest first. The reader's own work
        on each flow (its record) is then done while the workers identify, not before;
        the samples queued were held by the open flows anyway."""
        self._last_flows = True

    def _dispatch(self, chunk: _Chunk[T]) -> None:
        """To a worker, unless there is none or they are behind: then here while reading;
        at the end, into the queue of chunks waiting for a worker (_send_unsent sends
        them, oldest first)."""
        if chunk.done():
            return
        if not self._workers or (self._pool is None and not self._pool_started()):
            chunk.identify_here()
        elif self._last_flows:
            self._unsent.append(chunk)
        elif self._room():
            self._submit(chunk)
        else:
            chunk.identify_here()

    def _room(self) -> bool:
        """Whether the workers can take another chunk: a few waiting for each (at the end,
        at least one, so that chunks wait for the workers rather than for nothing)."""
        sent = self._sent
        while sent and sent[0].done():
            sent.popleft()
        queued = max(1, QUEUED_PER_WORKER) if self._last_flows else QUEUED_PER_WORKER
        return sum(1 for chunk in sent if not chunk.done()) < queued * self._workers

    def can_guess(self, guessing: int) -> bool:
        """Whether the workers are up and would otherwise wait, while reading: no closed
        flow's chunk in flight, and fewer guesses (LookAhead) than QUEUED_PER_WORKER for
        each worker. It never starts them (expect() does, once enough flows are open), and
        once they are given up, there is no guess."""
        if self._last_flows or not self._workers or (self._pool is None and (
                self._starting is None or not self._pool_started())):
            return False
        sent = self._sent
        while sent and sent[0].done():
            sent.popleft()
        return not sent and guessing < QUEUED_PER_WORKER * self._workers

    def guess(self, jobs: list[IdentifyJob]) -> Future[ChunkFacts | str] | None:
        """The facts of open flows' jobs, identified by a worker as the flows stand (None
        where they cannot be sent). Only through a file: the jobs hold the open flows'
        own sample buffers, which the pool's feeding thread would pickle while the
        reader adds to them."""
        if self._pool is None:
            return None
        try:
            path = self._files.write(jobs)
        except OSError:
            return None
        try:
            return self._pool.submit(identify_chunk_file, path)
        except (BrokenProcessPool, RuntimeError):
            with contextlib.suppress(OSError):
                os.unlink(path)
            return None

    def guessed(self, sent: ChunkFacts | str) -> list[FlowFacts]:
        """The facts a guess's worker sent back, shared as every flow's are."""
        return self._shared.sent(sent)

    def _submit(self, chunk: _Chunk[T]) -> None:
        assert self._pool is not None
        try:
            path = self._files.write(chunk.jobs)
        except OSError:  # no room for the file: the jobs go through the pool's pipe
            path = None
        try:
            chunk.future = (self._pool.submit(identify_chunk, chunk.jobs) if path is None
                            else self._pool.submit(identify_chunk_file, path))
        except (BrokenProcessPool, RuntimeError):
            self._give_up()
            chunk.identify_here()
            return
        self._sent.append(chunk)

    def _send_unsent(self) -> None:
        """The chunks waiting for a worker, oldest first, as far as the workers have room."""
        while self._unsent and self._pool is not None and self._room():
            self._submit(self._unsent.popleft())

    def _pool_started(self) -> bool:
        """Whether the workers are up; while they start, the reader does not wait for
        them, and if they could not start, it does without them."""
        if self._starting is None:
            self._starting = _Starting(self._workers)
        if not self._starting.ready():
            return False
        self._pool = self._starting.pool
        if self._pool is None:
            self._give_up()
            return False
        return True

    def _give_up(self) -> None:
        """Workers gone (killed, out of memory): everything from here on is done here.
        The pool is kept until finish(), which waits for it before removing the files."""
        self._workers = 0
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._broken, self._pool = self._pool, None
        while self._unsent:
            self._unsent.popleft().identify_here()

    def _complete(self, chunk: _Chunk[T]) -> None:
        if not chunk.jobs:
            return
        assert chunk.future is not None
        sent = self.sent_back(chunk.future)
        if sent is None:
            chunk.identify_here()
            return
        try:
            chunk.fill_pickled(sent)
        except OSError:  # its file could not be read: this chunk alone is done here
            chunk.identify_here()

    def sent_back(self, future: Future[ChunkFacts | str]) -> ChunkFacts | str | None:
        """What a worker sent back, waited for; None where the pool broke (the workers
        are given up), the task was cancelled or the worker could not read its chunk's
        file (that chunk alone). The exception is looked at, not raised: raised, its
        traceback would hold this frame and the flows it reaches, in a cycle that the
        collector, paused during a scan, would never free."""
        if future.cancelled():
            return None
        failed = future.exception()
        if failed is None:
            return future.result()
        if isinstance(failed, BrokenProcessPool):
            self._give_up()
        elif not isinstance(failed, OSError):
            raise failed
        return None

    def _deliver_done(self, wait: bool = False) -> None:
        chunks = self._chunks
        while chunks and (wait or chunks[0].done()):
            chunk = chunks.popleft()
            self._complete(chunk)
            for item, facts in zip(chunk.items, chunk.facts, strict=True):
                assert facts is not None
                self._deliver(item, facts)

    def finish(self) -> None:
        """Identify what is left and deliver everything; the workers stop."""
        try:
            if self._filling.items:
                chunk, self._filling = self._filling, _Chunk(self._shared)
                chunk.identify_here()
                self._chunks.append(chunk)
            self._share_out()
            self._deliver_done(wait=True)
        finally:
            self._stop()

    def _share_out(self) -> None:
        """The chunks waiting for a worker: the workers take them from the oldest on, the
        reader from the newest back, until none is left; then the reader takes back,
        newest first, those sent that no worker has started, while the workers finish."""
        while self._unsent:
            self._send_unsent()
            if self._unsent:
                self._unsent.pop().identify_here()
        for chunk in reversed(self._chunks):
            if chunk.future is not None and chunk.future.cancel():
                chunk.future = None
                chunk.identify_here()

    def _stop(self) -> None:
        """The workers stopped and waited for (a broken pool's too, so that none writes
        into the folder as it goes), then the chunks' files removed."""
        if self._starting is not None and self._pool is None and self._workers:
            self._pool = self._starting.wait()  # started too late to be used
        for pool in (self._pool, self._broken):
            if pool is not None:
                pool.shutdown()
        self._pool = self._broken = None
        self._files.remove()
        self._sent.clear()
        self._unsent.clear()
        # The callback is often a bound method of the identifier's owner: dropped, the
        # two make no reference cycle, which would keep every flow's facts alive until
        # a full collection (7 s over 200k flows).
        self._deliver = _finished


# What a flow's facts rest on: its samples' and late samples' lengths, its SSRC counts and
# whether its media samples ran out. Samples are only ever appended and SSRC sets only
# grow, so the same signature means the same job, and identify_job gives the same facts.
Signature = tuple[int, int, tuple[int, int], bool]


def signature(job: IdentifyJob) -> Signature:
    (_proto, _key, samples, counts), media_unread, late = job
    return len(samples), len(late), counts, media_unread


class LookAhead:
    """Open flows identified before they close, by workers that would otherwise wait.

    A capture whose flows stay open to its end (a long call, the flows of a busy host)
    closes them all at once, and identifying them all then takes the workers and the
    reader a second or more, while the worker cores sat idle during the reading. So,
    after each batch, the open flows whose samples did not grow through it (the flow
    table notes those that grew: FlowTable.touched) go to idle workers as they
    stand; the facts come back onto the flow (FlowState.ahead) with the signature of the
    job they were made from. A flow that closes with the same signature takes those facts
    (closed()); one whose samples grew since is identified at its close as any other. The
    report is the same either way: the facts are identify_job's of the same job."""

    def __init__(self, identifier: Identifier[Any], table: FlowTable) -> None:
        """The table is not kept: the owner of this object is often the table's closing
        callback, and the two would make a reference cycle over every flow's facts."""
        self._identifier = identifier
        table.touched = set()
        # The open flows with samples not identified as they stand, each with the look
        # that last saw them grow; the longest still first.
        self._pending: dict[FlowState, int] = {}
        self._guesses: deque[tuple[Future[ChunkFacts | str], list[FlowState],
                                   list[Signature]]] = deque()
        self._looks = 0

    def closed(self, state: FlowState, job: IdentifyJob) -> FlowFacts | None:
        """The facts identified ahead for a flow the table closes, where its job is still
        the one they were made from."""
        self._pending.pop(state, None)
        ahead = state.ahead
        if ahead is None or ahead[0] != signature(job):
            return None
        facts = ahead[1]
        assert isinstance(facts, FlowFacts)
        return facts

    def look(self, table: FlowTable) -> None:
        """After each batch: the guesses done taken back, and the flows that stood still
        through the batch sent to the workers, the longest still first, while the workers
        would otherwise wait."""
        self._collect()
        touched = table.touched
        if touched is None:
            return
        table.touched = set()
        self._looks += 1
        pending, now = self._pending, self._looks
        for state in touched:
            pending.pop(state, None)  # to the end: it grew last
            # Without samples, nothing to identify: one whose late samples or SSRCs grew
            # with no sample kept (a sample budget of 0). (A flow that closes leaves the
            # table's notes, and the pending ones: closed().)
            if state.samples:
                pending[state] = now
        identifier = self._identifier
        while identifier.can_guess(len(self._guesses)):
            states: list[FlowState] = []
            for state, grew in pending.items():
                if grew == now or len(states) == CHUNK:
                    break
                states.append(state)
            if not states:
                return
            for state in states:
                del pending[state]
            jobs = [job_of(state) for state in states]
            future = identifier.guess(jobs)
            if future is None:
                return
            self._guesses.append((future, states, [signature(job) for job in jobs]))

    def settle(self, table: FlowTable) -> None:
        """At the end of the reading: the guesses in flight waited for, and no more made."""
        self._collect(wait=True)
        table.touched = None
        self._pending = {}

    def _collect(self, wait: bool = False) -> None:
        guesses = self._guesses
        while guesses and (wait or guesses[0][0].done()):
            future, states, signatures = guesses.popleft()
            sent = self._identifier.sent_back(future)
            if sent is None:
                continue  # these flows are identified as they close
            try:
                facts = self._identifier.guessed(sent)
            except OSError:  # the facts' file could not be read
                continue
            for state, sign, found in zip(states, signatures, facts, strict=True):
                state.ahead = (sign, found)


def _finished(item: object, facts: FlowFacts) -> None:
    raise RuntimeError("flows added after Identifier.finish")
