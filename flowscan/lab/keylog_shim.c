/* Key-log shim for a process that links OpenSSL dynamically (the lab loads it into Janus
 * with LD_PRELOAD): every SSL_CTX the process creates gets a keylog callback that appends
 * NSS key log lines (CLIENT_RANDOM ... for DTLS 1.2) to the file named by $SSLKEYLOGFILE.
 * OpenSSL's own SSL_CTX_new is found with dlsym(RTLD_NEXT) and called unchanged.
 * Built by the lab at run time: gcc -shared -fPIC -o keylog_shim.so keylog_shim.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_method_st SSL_METHOD;
typedef void (*keylog_cb)(const SSL *, const char *);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void write_line(const SSL *ssl, const char *line)
{
    (void)ssl;
    const char *path = getenv("SSLKEYLOGFILE");
    if (path == NULL || *path == '\0')
        return;
    pthread_mutex_lock(&lock);
    FILE *out = fopen(path, "a");
    if (out != NULL) {
        fprintf(out, "%s\n", line);
        fclose(out);
    }
    pthread_mutex_unlock(&lock);
}

SSL_CTX *SSL_CTX_new(const SSL_METHOD *method)
{
    static SSL_CTX *(*real_new)(const SSL_METHOD *) = NULL;
    static void (*set_keylog)(SSL_CTX *, keylog_cb) = NULL;
    if (real_new == NULL) {
        /* RTLD_NEXT finds a libssl linked at start-up (Janus); one that a module loaded
         * later with dlopen (Python's _ssl) is only found by name. */
        void *lib = RTLD_NEXT;
        if (dlsym(lib, "SSL_CTX_new") == NULL)
            lib = dlopen("libssl.so.3", RTLD_LAZY | RTLD_NOLOAD);
        if (lib == NULL)
            return NULL;
        real_new = (SSL_CTX *(*)(const SSL_METHOD *))dlsym(lib, "SSL_CTX_new");
        set_keylog = (void (*)(SSL_CTX *, keylog_cb))dlsym(lib, "SSL_CTX_set_keylog_callback");
    }
    if (real_new == NULL)
        return NULL;
    SSL_CTX *ctx = real_new(method);
    if (ctx != NULL && set_keylog != NULL)
        set_keylog(ctx, write_line);
    return ctx;
}
