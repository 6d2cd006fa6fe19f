"""Flows identified on worker processes give the serial path's reports, byte for byte."""

from __future__ import annotations

import os
import pickle
import threading
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import pytest
from capfiles import ether
from conftest import real_capture
from scapy.layers.inet import IP, UDP

from flowscan import api, identify_workers
from flowscan.capture import CaptureSource
from flowscan.capture.decode import Decoder
from flowscan.flows import FlowState, FlowTable, pack_samples
from flowscan.identify import (
    Facts,
    FlowFacts,
    IdentifyJob,
    _field_values,
    identify_job,
    job_of,
)
from flowscan.identify_workers import Identifier, default_workers, worth_sending
from flowscan.options import ScanOptions
from flowscan.pipeline import read_account_identify
from flowscan.report.json import dumps_bytes

LAB = sorted((Path(__file__).resolve().parent.parent / "captures" / "lab").glob(
    "*/capture.pcapng"))


def report_bytes(path: Path, workers: int, **options: Any) -> bytes:
    return dumps_bytes([api.scan(str(path), workers=workers, **options)])


@pytest.fixture
def tiny_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two flows a chunk, so that even a small capture goes through the workers, and the
    reader takes chunks itself as soon as one waits; the workers' start is waited for,
    so that a small capture's chunks do reach them."""
    monkeypatch.setattr(identify_workers, "CHUNK", 2)
    monkeypatch.setattr(identify_workers, "QUEUED_PER_WORKER", 1)
    monkeypatch.setattr(identify_workers._Starting, "ready", _started_at_once)


def _started_at_once(starting: identify_workers._Starting) -> bool:
    starting.wait()
    return True


def test_workers_equal_serial_on_real_captures(real_path: Path, tiny_chunks: None,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """In small batches, with the worker up from the start: flows are also identified
    ahead, before they close (LookAhead)."""
    monkeypatch.setattr("flowscan.capture.records.BATCH_BYTES", 8192)
    monkeypatch.setattr(identify_workers, "EXPECTED_CHUNKS", 0)
    serial = report_bytes(real_path, 0)
    assert report_bytes(real_path, 1) == serial
    assert report_bytes(real_path, 2, home="EU", vantage="DE") == report_bytes(
        real_path, 0, home="EU", vantage="DE")


@pytest.mark.parametrize("path", LAB, ids=lambda p: p.parent.name)
def test_workers_equal_serial_on_lab_captures(path: Path, tiny_chunks: None) -> None:
    keylog = path.parent / "keys.log"
    options = {"keylog": [str(keylog)]} if keylog.exists() else {}
    assert report_bytes(path, 1, **options) == report_bytes(path, 0, **options)


def _job(n: int, requests: int | None = None) -> IdentifyJob:
    """A UDP flow of STUN binding requests with transaction IDs from n: four of them for
    two flows in three, one for the others (or as many as `requests` says)."""
    count = requests if requests is not None else 4 if n % 3 else 1
    samples = [(float(n), 0, b"\x00\x01\x00\x00\x21\x12\xa4\x42" + (n + i).to_bytes(12, "big"))
               for i in range(count)]
    return ((17, bytes(12), pack_samples(samples), (0, 0)), False, b"")


def test_every_flow_with_a_payload_sample_goes_to_a_worker() -> None:
    """One sample is enough (identifying it costs the reader more than taking its facts
    back); a flow without payload has nothing to parse and stays with the reader."""
    assert worth_sending(_job(3)) and worth_sending(_job(1))  # one sample, four
    assert not worth_sending(((17, bytes(12), b"", (0, 0)), False, b""))


@pytest.mark.parametrize("workers", [0, 1, 2])
def test_facts_come_back_in_the_order_flows_went_in(workers: int, tiny_chunks: None) -> None:
    got: list[tuple[int, FlowFacts]] = []
    identifier: Identifier[int] = Identifier(lambda item, facts: got.append((item, facts)),
                                             workers)
    for n in range(101):
        identifier.add(n, _job(n))
    identifier.finish()
    assert [n for n, _ in got] == list(range(101))
    assert [facts.stun.messages for _, facts in got if facts.stun] == [
        4 if n % 3 else 1 for n in range(101)]


def _identified(jobs: list[IdentifyJob], workers: int) -> list[FlowFacts]:
    got: list[FlowFacts] = []
    identifier: Identifier[int] = Identifier(lambda item, facts: got.append(facts), workers)
    for n, job in enumerate(jobs):
        identifier.add(n, job)
    identifier.finish()
    assert got == [identify_job(job) for job in jobs]
    return got


@pytest.mark.parametrize("workers", [0, 1])
def test_flows_with_the_same_facts_share_one_facts_object(workers: int, tiny_chunks: None
                                                          ) -> None:
    """Equal facts are one object, whether a worker or the reader identified the flow;
    unequal ones never are."""
    # Two kinds in the first 40 (one request or four); the last ten each of their own
    # kind (5 to 14 requests).
    got = _identified([_job(n) for n in range(40)]
                      + [_job(n, requests=n) for n in range(5, 15)], workers)
    assert len({id(facts) for facts in got[:40]}) == 2
    assert len({id(facts) for facts in got}) == 12


@pytest.mark.parametrize("path", LAB[:6], ids=lambda p: p.parent.name)
def test_facts_pickle_as_their_fields_by_position(path: Path) -> None:
    """What a worker sends back: each facts object as its class and its values (no field
    names), unpickling to equal facts."""
    for cls in Facts.__subclasses__():
        _field_values(cls)  # TypeError unless every field is an __init__ argument by position
    with CaptureSource(str(path)) as source:
        flows = read_account_identify(source, ScanOptions(workers=0), None).flows
    for _, facts in flows:
        data = pickle.dumps(facts, identify_workers.PICKLED)
        assert pickle.loads(data) == facts
        assert b"media_unread" not in data and b"sequence_ok" not in data


def test_the_facts_remembered_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past SHARED_FACTS kinds the memory starts afresh: every flow keeps its own facts."""
    monkeypatch.setattr(identify_workers, "SHARED_FACTS", 3)
    shared = identify_workers.SharedFacts()
    jobs = [_job(0, requests=k) for k in (1, 1, 2, 3, 4, 1)]
    got = [shared.identified(job) for job in jobs]
    assert got == [identify_job(job) for job in jobs]
    assert len(shared._known) <= 3
    assert got[1] is got[0] and got[5] is not got[0]  # a fourth kind came in between


def _kill_workers(identifier: Identifier[int]) -> None:
    """Every worker process of the identifier's pool killed outright."""
    pool = identifier._pool
    assert pool is not None and pool._processes
    for process in list(pool._processes.values()):
        assert process.pid is not None
        os.kill(process.pid, 9)


def test_a_dead_worker_leaves_the_reader_to_identify(tiny_chunks: None) -> None:
    """Workers killed mid-capture: every flow is still identified, here."""
    got: list[int] = []
    identifier: Identifier[int] = Identifier(lambda item, facts: got.append(item), 1)
    for n in range(10):
        identifier.add(n, _job(n))
    _kill_workers(identifier)
    for n in range(10, 40):
        identifier.add(n, _job(n))
    identifier.finish()
    assert got == list(range(40))


def test_the_reader_does_not_wait_for_the_workers_to_start(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """While the worker processes start, chunks are identified here, in order; once they
    are up, the next chunks go to them."""
    monkeypatch.setattr(identify_workers, "CHUNK", 2)
    release = threading.Event()
    start = identify_workers._Starting._start

    def held_start(starting: identify_workers._Starting, workers: int) -> None:
        release.wait()
        start(starting, workers)

    monkeypatch.setattr(identify_workers._Starting, "_start", held_start)
    got: list[int] = []
    identifier: Identifier[int] = Identifier(lambda item, facts: got.append(item), 1)
    for n in range(30):
        identifier.add(n, _job(n))
    assert identifier._pool is None and got == list(range(len(got))) and len(got) >= 20
    release.set()
    assert identifier._starting is not None and identifier._starting.wait() is not None
    for n in range(30, 60):
        identifier.add(n, _job(n))
    assert identifier._pool is not None
    identifier.finish()
    assert got == list(range(60))


def test_workers_start_early_once_enough_flows_are_open() -> None:
    """Open flows enough for a few chunks start the workers before any flow closes; a
    capture of a few flows never starts them, nor does a run without workers."""
    few: Identifier[int] = Identifier(lambda item, facts: None, 1, chunk=4)
    few.expect(4 * identify_workers.EXPECTED_CHUNKS - 1)
    assert few._starting is None
    none: Identifier[int] = Identifier(lambda item, facts: None, 0, chunk=4)
    none.expect(1000)
    assert none._starting is None
    got: list[int] = []
    many: Identifier[int] = Identifier(lambda item, facts: got.append(item), 1, chunk=4)
    many.expect(4 * identify_workers.EXPECTED_CHUNKS)
    assert many._starting is not None and many._starting.wait() is not None
    for n in range(40):
        many.add(n, _job(n))
    assert many._pool is not None  # the first chunk went to the worker that was up
    many.finish()
    assert got == list(range(40))


def test_no_workers_inside_a_daemonic_process(monkeypatch: pytest.MonkeyPatch) -> None:
    import multiprocessing

    monkeypatch.setattr(multiprocessing.current_process(), "daemon", True, raising=False)
    assert default_workers() == 0


CYCLE_CHECK = """
import gc, sys
from flowscan import api, identify_workers
from flowscan.capture import records
from flowscan.identify import FlowFacts
if sys.argv[3] == "ahead":  # small batches, the worker up from the start: guesses
    identify_workers.CHUNK, identify_workers.EXPECTED_CHUNKS = 2, 0
    identify_workers._Starting.ready = lambda starting: starting.wait() or True
    records.BATCH_BYTES = 4096
guessed = identify_workers.Identifier.guess
guesses = []
def counted(identifier, jobs):
    guesses.append(len(jobs))
    return guessed(identifier, jobs)
identify_workers.Identifier.guess = counted
gc.collect()
gc.set_debug(gc.DEBUG_SAVEALL)
api.scan(sys.argv[1], workers=int(sys.argv[2]))
gc.unfreeze()
gc.collect()
print(sum(type(o) is FlowFacts for o in gc.garbage), bool(guesses))
"""


@pytest.mark.parametrize(("workers", "ahead"), [(0, False), (1, False), (1, True)])
def test_no_reference_cycle_keeps_the_facts_alive(workers: int, ahead: bool) -> None:
    """A scan leaves no cycle holding flows' facts: with the collector paused during the
    scan and the survivors frozen after it, such a cycle would never be freed. In a fresh
    interpreter: the suite's other tests leave garbage of their own. With guesses too
    (LookAhead), on a capture of many flows."""
    import subprocess
    import sys

    capture = str(LAB[0]) if not ahead else real_capture("teams.pcap")
    done = subprocess.run([sys.executable, "-c", CYCLE_CHECK, str(capture), str(workers),
                           "ahead" if ahead else "-"],
                          capture_output=True, text=True, timeout=120,
                          cwd=Path(api.__file__).resolve().parent.parent)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", str(ahead)]



def test_the_last_flows_go_to_the_workers_oldest_first(tiny_chunks: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """While reading, a reader with more chunks waiting than the workers can take
    identifies the next one itself (here: any chunk waiting is too many). Once the
    capture has ended (last_flows), no chunk is identified as it fills: the workers take
    them from the oldest on, as they have room, and finish() has the reader take the
    rest from the newest back. The facts and their order are unchanged."""
    monkeypatch.setattr(identify_workers, "QUEUED_PER_WORKER", 0)
    here: list[int] = []
    sent: list[int] = []
    identify_here = identify_workers._Chunk.identify_here
    submit = Identifier._submit

    def counted(chunk: identify_workers._Chunk[int]) -> None:
        here.append(chunk.items[0])
        identify_here(chunk)

    def recorded(identifier: Identifier[int], chunk: identify_workers._Chunk[int]) -> None:
        sent.append(chunk.items[0])
        submit(identifier, chunk)

    monkeypatch.setattr(identify_workers._Chunk, "identify_here", counted)
    monkeypatch.setattr(Identifier, "_submit", recorded)
    got: list[tuple[int, FlowFacts]] = []
    identifier: Identifier[int] = Identifier(lambda item, facts: got.append((item, facts)), 1)
    for n in range(30):
        identifier.add(n, _job(n))
    assert here  # reading: the worker counts as behind, the reader takes the chunks
    here.clear()
    sent.clear()
    identifier.last_flows()
    for n in range(30, 90):
        identifier.add(n, _job(n))
    assert here == []  # the last flows: none identified as it filled
    identifier.finish()
    assert sent == sorted(sent) and sent[0] == 30  # to the workers from the oldest on
    assert here[0] == 88  # here, from the newest back (and any sent but not started)
    assert set(sent) | set(here) == set(range(30, 90, 2))
    assert [n for n, _ in got] == list(range(90))
    assert [facts.stun.messages for _, facts in got if facts.stun] == [
        4 if n % 3 else 1 for n in range(90)]


def test_a_chunk_sends_each_distinct_facts_once() -> None:
    """What a worker sends back for a chunk: the distinct facts pickled once each, and each
    flow's index among them, in order."""
    jobs = [_job(n) for n in range(12)]  # two kinds: one request (n % 3 == 0) or four
    distinct, order = identify_workers.identify_chunk(jobs)
    assert len(distinct) == 2
    assert [pickle.loads(distinct[i]) for i in order] == [identify_job(j) for j in jobs]


def _sent_to_a_worker(got: list[FlowFacts]
                      ) -> tuple[Identifier[int], identify_workers.ChunkFacts | str]:
    """An identifier of four flows whose first chunk a worker has identified, and what the
    worker sent back for it (so that finish() cannot take the chunk back)."""
    identifier: Identifier[int] = Identifier(lambda item, facts: got.append(facts), 1)
    for n in range(4):
        identifier.add(n, _job(n))
    sent = [chunk.future for chunk in identifier._chunks if chunk.future is not None]
    assert sent
    return identifier, sent[0].result(timeout=60)


def test_chunks_travel_in_files_that_are_gone_after_the_scan(tiny_chunks: None) -> None:
    """Jobs go to the worker in a file of a folder of the reader's own (mode 0700), and the
    facts come back in one; each is removed once read, and the folder once finished."""
    got: list[FlowFacts] = []
    identifier, answer = _sent_to_a_worker(got)
    assert isinstance(answer, str)  # the worker's answer: the name of its facts' file
    facts_file = Path(answer)
    folder = facts_file.parent
    assert folder.stat().st_mode & 0o777 == 0o700
    assert facts_file.exists() and not Path(str(facts_file).removesuffix(".facts")).exists()
    identifier.finish()
    assert got == [identify_job(_job(n)) for n in range(4)]
    assert not folder.exists()


def test_without_room_for_files_the_jobs_go_through_the_pipe(
        tiny_chunks: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """A full file system (or no writable temporary folder) costs only speed: the jobs go
    to the worker through the pool's pipe, and the facts are the same."""
    came_back: list[type] = []
    fill_pickled = identify_workers._Chunk.fill_pickled

    def full(files: identify_workers.ChunkFiles, jobs: list[IdentifyJob]) -> str:
        raise OSError(28, "No space left on device")

    def recorded(chunk: identify_workers._Chunk[int],
                 sent: identify_workers.ChunkFacts | str) -> None:
        came_back.append(type(sent))
        fill_pickled(chunk, sent)

    monkeypatch.setattr(identify_workers.ChunkFiles, "write", full)
    monkeypatch.setattr(identify_workers._Chunk, "fill_pickled", recorded)
    got: list[FlowFacts] = []
    identifier, _ = _sent_to_a_worker(got)
    identifier.finish()
    assert got == [identify_job(_job(n)) for n in range(4)]
    assert came_back and set(came_back) == {tuple}  # facts themselves, not a file's name


def test_a_chunk_whose_file_is_lost_is_identified_here() -> None:
    """A worker that cannot read its chunk's file (removed under it) fails that chunk
    alone: the reader identifies it, and the workers stay."""
    from concurrent.futures import Future

    got: list[tuple[int, FlowFacts]] = []
    identifier: Identifier[int] = Identifier(lambda item, facts: got.append((item, facts)), 1)
    chunk: identify_workers._Chunk[int] = identify_workers._Chunk(identify_workers.SharedFacts())
    for n in range(3):
        chunk.add(n, _job(n))
    lost: Future[identify_workers.ChunkFacts | str] = Future()
    lost.set_exception(FileNotFoundError(2, "No such file or directory"))
    chunk.future = lost
    identifier._complete(chunk)
    assert chunk.facts == [identify_job(_job(n)) for n in range(3)]
    assert identifier._workers == 1


def test_chunk_files_go_to_the_temporary_folder_without_shared_memory(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Where /dev/shm is missing or refuses a folder, the chunks' folder is made in the
    temporary folder instead, still only the user's."""
    monkeypatch.setattr(identify_workers, "SHARED_MEMORY", str(tmp_path / "missing"))
    monkeypatch.setattr(identify_workers.tempfile, "tempdir", str(tmp_path))
    files = identify_workers.ChunkFiles()
    path = Path(files.write([_job(1)]))
    assert path.parent.parent == tmp_path and path.parent.stat().st_mode & 0o777 == 0o700
    assert identify_workers.ChunkFiles.take(str(path)) == [_job(1)] and not path.exists()
    files.remove()
    assert not path.parent.exists()


def test_a_dead_worker_at_the_end_leaves_the_reader_every_chunk(tiny_chunks: None) -> None:
    """Workers killed while the last flows' chunks wait for them: the reader identifies
    those and the ones sent, in order, and the chunks' folder is gone after."""
    got: list[int] = []
    identifier: Identifier[int] = Identifier(lambda item, facts: got.append(item), 1)
    identifier.last_flows()
    for n in range(20):
        identifier.add(n, _job(n))
    assert identifier._unsent
    folder = identifier._files._folder
    _kill_workers(identifier)
    for n in range(20, 40):
        identifier.add(n, _job(n))
    identifier.finish()
    assert got == list(range(40))
    assert folder is not None and not Path(folder).exists()


def test_folders_of_killed_scans_are_removed(monkeypatch: pytest.MonkeyPatch,
                                             tmp_path: Path) -> None:
    """A scan killed outright leaves its chunks' folder (payload samples) behind: the next
    one to make a folder removes those whose process is gone, and only those."""
    import subprocess
    import sys

    monkeypatch.setattr(identify_workers, "SHARED_MEMORY", str(tmp_path))
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    prefix = identify_workers.FOLDER_PREFIX
    left = tmp_path / f"{prefix}{gone}-abc"
    alive = tmp_path / f"{prefix}{os.getppid()}-def"
    others = [tmp_path / f"{prefix}{name}-x" for name in ("notapid", "99999999999", "²")]
    for folder in (left, alive, *others):
        folder.mkdir()
        (folder / "1").write_bytes(b"samples")
    files = identify_workers.ChunkFiles()
    path = Path(files.write([_job(1)]))
    assert not left.exists() and alive.exists() and all(f.exists() for f in others)
    assert path.parent.name.startswith(f"{prefix}{os.getpid()}-")
    files.remove()


def test_facts_come_back_through_the_pipe_where_their_file_cannot_be_written(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A worker that cannot write its facts' file sends the facts themselves: its work is
    not lost, and the chunk's file is gone all the same."""
    jobs = [_job(n) for n in range(6)]
    path = identify_workers.ChunkFiles.put(str(tmp_path / "1"), jobs)
    put = identify_workers.ChunkFiles.put

    def full(where: str, value: object) -> str:
        if where.endswith(".facts"):
            raise OSError(28, "No space left on device")
        return put(where, value)

    monkeypatch.setattr(identify_workers.ChunkFiles, "put", staticmethod(full))
    assert identify_workers.identify_chunk_file(path) == identify_workers.identify_chunk(jobs)
    assert list(tmp_path.iterdir()) == []


def _ahead_counted(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How flows closed: with the facts identified ahead (hit), after their samples grew
    since (stale), or never identified ahead."""
    counts = {"hit": 0, "stale": 0, "never": 0}
    closed = identify_workers.LookAhead.closed

    def counted(look: identify_workers.LookAhead, state: FlowState, job: IdentifyJob
                ) -> FlowFacts | None:
        facts = closed(look, state, job)
        counts["hit" if facts is not None else "stale" if state.ahead else "never"] += 1
        return facts

    monkeypatch.setattr(identify_workers.LookAhead, "closed", counted)
    return counts


def test_flows_identified_ahead_give_the_serial_report(tiny_chunks: None,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Read in small batches, flows that stand still while the capture goes on are
    identified by the worker before they close (LookAhead); a flow whose samples grew
    afterwards is identified again as it closes. Every lab capture's report is the serial
    one, and both cases occur."""
    monkeypatch.setattr("flowscan.capture.records.BATCH_BYTES", 4096)
    monkeypatch.setattr(identify_workers, "EXPECTED_CHUNKS", 0)  # the worker from the start
    counts = _ahead_counted(monkeypatch)
    for path in LAB:
        keylog = path.parent / "keys.log"
        options = {"keylog": [str(keylog)]} if keylog.exists() else {}
        serial = report_bytes(path, 0, **options)
        assert report_bytes(path, 1, **options) == serial, path.parent.name
    assert counts["hit"] > 0 and counts["stale"] > 0, counts


def _udp_state(table: FlowTable, decoder: Decoder, sport: int, payload: bytes,
               ts: float) -> None:
    data = bytes(ether() / IP(src="192.0.2.1", dst="198.51.100.2") / UDP(
        sport=sport, dport=3478) / payload)
    decoded = decoder.decode(1, data)
    assert decoded is not None
    table.add(ts, len(data), decoded, data)


def still_pending(look: identify_workers.LookAhead) -> int:
    return len(look._pending)


def test_a_flow_that_grew_after_its_guess_is_identified_as_it_closes() -> None:
    """Guessed as they stood, a flow whose samples did not grow since closes with the
    worker's facts (the same object); one that grew gets none, and is identified anew."""
    table = FlowTable(on_close=lambda state: None)
    decoder = Decoder()
    request = bytes.fromhex("000100002112a442")
    identifier: Identifier[int] = Identifier(lambda item, facts: None, 1, chunk=1)
    identifier.expect(identify_workers.EXPECTED_CHUNKS)  # the worker starts
    look = identify_workers.LookAhead(identifier, table)
    for sport in (40000, 40001):
        _udp_state(table, decoder, sport, request + bytes(12), 1.0)
    assert identifier._starting is not None
    identifier._starting.wait()
    look.look(table)  # both grew in this batch: none sent
    assert still_pending(look) == 2
    look.look(table)  # both stood still through a batch: to the worker
    look.settle(table)
    assert still_pending(look) == 0
    still, grown = table.open_flows()
    assert still.ahead is not None and grown.ahead is not None
    _udp_state(table, decoder, 40001, request + b"\x01" * 12, 2.0)
    try:
        assert look.closed(still, job_of(still)) is still.ahead[1]
        assert look.closed(grown, job_of(grown)) is None
        assert still.ahead[1] == identify_job(job_of(still))
    finally:
        identifier.finish()


def test_a_broken_pool_ends_the_guesses_and_keeps_no_flow_alive() -> None:
    """A guess whose pool broke (a worker killed) gives no facts, gives the workers up (no
    guess is written after it), and is never raised: a raised exception's traceback would
    hold the flows in a cycle that the collector, paused during a scan, never frees."""
    table = FlowTable(on_close=lambda state: None)
    decoder = Decoder()
    identifier: Identifier[int] = Identifier(lambda item, facts: None, 1)
    look = identify_workers.LookAhead(identifier, table)
    _udp_state(table, decoder, 40000, bytes.fromhex("000100002112a442") + bytes(12), 1.0)
    (state,) = table.open_flows()
    broken: Future[identify_workers.ChunkFacts | str] = Future()
    broken.set_exception(BrokenProcessPool("a worker died"))
    look._guesses.append((broken, [state], [identify_workers.signature(job_of(state))]))
    look.settle(table)
    assert state.ahead is None and identifier.workers == 0
    assert not identifier.can_guess(0)
    failed = broken.exception()
    assert failed is not None and failed.__traceback__ is None
    identifier.finish()
