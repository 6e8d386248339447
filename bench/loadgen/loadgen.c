/* loadgen: the fast real-TLS load of bench/daemon.py's throughput phase.
 *
 * Python clients and the asyncio stand-in top out near a few hundred calls/s
 * on one core; this C program (OpenSSL, so its calls go through the same
 * SSL_write/SSL_read probes as Python's ssl, curl or node) makes thousands.
 * It does not know HTTP beyond framing: bench/daemon.py writes the exact
 * request and reply bytes of the stand-in (OpenAI chat and Anthropic messages,
 * plain and streamed) into a directory, and both ends replay them.
 *
 *   loadsrv serve CERT KEY WIRE_DIR
 *       listen on 127.0.0.1:0, print the port, serve each connection on its own
 *       thread: the n-th request of a connection gets reply n % KINDS, written one
 *       SSL_write per part (a streamed reply's events leave one by one).
 *   loadgen client PORT CA WIRE_DIR SECONDS CONNS CALLS_PER_CONN RATE
 *       CONNS threads, each on keep-alive connections (a new one every
 *       CALLS_PER_CONN calls), call after call for SECONDS, all together at most
 *       RATE calls/s (0: as fast as they go); print one JSON line:
 *       {"calls": N, "seconds": S}.
 *
 * WIRE_DIR holds reqK (the whole request) and repK (the reply's writes, each a
 * 4-byte little-endian length then the bytes) for K = 0..KINDS-1.
 * The two names are one binary built twice, so the daemon can capture the
 * client (--comm loadgen) and leave the server out.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define KINDS 4
#define MAX_PARTS 64

struct blob { unsigned char *p; size_t n; };
struct reply { struct blob parts[MAX_PARTS]; int nparts; };

static struct blob reqs[KINDS];
static struct reply reps[KINDS];
static SSL_CTX *ctx;
static int port;
static double seconds;
static int per_conn;
static double gap_s; /* per thread between call starts; 0: flat out */
static atomic_long total_calls;

static void die(const char *what)
{
	fprintf(stderr, "loadgen: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static struct blob slurp(const char *dir, const char *name, int k)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s%d", dir, name, k);
	FILE *f = fopen(path, "rb");
	if (!f)
		die(path);
	fseek(f, 0, SEEK_END);
	struct blob b = { .n = (size_t)ftell(f) };
	fseek(f, 0, SEEK_SET);
	b.p = malloc(b.n + 1);
	if (fread(b.p, 1, b.n, f) != b.n)
		die(path);
	fclose(f);
	return b;
}

static void load_wire(const char *dir)
{
	for (int k = 0; k < KINDS; k++) {
		reqs[k] = slurp(dir, "req", k);
		struct blob all = slurp(dir, "rep", k);
		size_t at = 0;
		while (at + 4 <= all.n && reps[k].nparts < MAX_PARTS) {
			uint32_t n;
			memcpy(&n, all.p + at, 4);
			reps[k].parts[reps[k].nparts++] = (struct blob){ all.p + at + 4, n };
			at += 4 + n;
		}
	}
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Read one request: head up to CRLFCRLF, then Content-Length bytes. 0 at EOF. */
static int read_request(SSL *ssl, char *buf, size_t cap)
{
	size_t have = 0;
	for (;;) {
		buf[have] = 0;
		char *end = strstr(buf, "\r\n\r\n");
		if (end) {
			char *cl = strcasestr(buf, "content-length:");
			size_t want = (size_t)(end + 4 - buf) + (cl ? strtoul(cl + 15, 0, 10) : 0);
			if (have >= want)
				return 1;
		}
		if (have + 1 >= cap)
			return 0;
		int n = SSL_read(ssl, buf + have, (int)(cap - have - 1));
		if (n <= 0)
			return 0;
		have += (size_t)n;
	}
}

static void *serve_conn(void *arg)
{
	int fd = (int)(intptr_t)arg;
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	char *buf = malloc(1 << 20);
	if (SSL_accept(ssl) == 1) {
		for (long n = 0; read_request(ssl, buf, 1 << 20); n++) {
			struct reply *r = &reps[n % KINDS];
			for (int i = 0; i < r->nparts; i++)
				if (SSL_write(ssl, r->parts[i].p, (int)r->parts[i].n) <= 0)
					goto out;
		}
	}
out:
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
	free(buf);
	return NULL;
}

static int serve(const char *cert, const char *key)
{
	ctx = SSL_CTX_new(TLS_server_method());
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
		die("certificate");
	int lfd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	struct sockaddr_in a = { .sin_family = AF_INET };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t len = sizeof(a);
	if (bind(lfd, (struct sockaddr *)&a, len) || listen(lfd, 512) ||
	    getsockname(lfd, (struct sockaddr *)&a, &len))
		die("listen");
	printf("%d\n", ntohs(a.sin_port));
	fflush(stdout);
	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0)
			continue;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		pthread_t t;
		pthread_create(&t, NULL, serve_conn, (void *)(intptr_t)fd);
		pthread_detach(t);
	}
}

static SSL *dial(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
		die("connect");
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	SSL *ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	SSL_set_tlsext_host_name(ssl, "localhost");
	if (SSL_connect(ssl) != 1)
		die("handshake");
	return ssl;
}

static void hang_up(SSL *ssl)
{
	int fd = SSL_get_fd(ssl);
	SSL_shutdown(ssl);
	SSL_free(ssl);
	close(fd);
}

/* Every reply is chunked: it ends with the zero-size chunk. */
static int read_reply(SSL *ssl, char *buf, size_t cap)
{
	size_t have = 0;
	for (;;) {
		int n = SSL_read(ssl, buf + have, (int)(cap - have));
		if (n <= 0)
			return 0;
		have += (size_t)n;
		if (have >= 7 && memcmp(buf + have - 7, "\r\n0\r\n\r\n", 7) == 0)
			return 1;
		if (have + 16384 > cap)
			have = 0; /* only the tail matters */
	}
}

static void *client_thread(void *arg)
{
	(void)arg;
	char *buf = malloc(1 << 20);
	double deadline = now_s() + seconds;
	long calls = 0;
	SSL *ssl = NULL;
	double next = now_s();
	while (now_s() < deadline) {
		if (gap_s > 0) {
			double wait = next - now_s();
			if (wait > 0) {
				struct timespec ts = { (time_t)wait, (long)((wait - (time_t)wait) * 1e9) };
				nanosleep(&ts, NULL);
			}
			next += gap_s;
		}
		if (ssl == NULL || calls % per_conn == 0) {
			if (ssl)
				hang_up(ssl);
			ssl = dial();
		}
		/* The server counts per connection: so does the rotation. */
		struct blob *q = &reqs[(calls % per_conn) % KINDS];
		if (SSL_write(ssl, q->p, (int)q->n) <= 0 || !read_reply(ssl, buf, 1 << 20))
			die("call failed");
		calls++;
	}
	if (ssl)
		hang_up(ssl);
	atomic_fetch_add(&total_calls, calls);
	free(buf);
	return NULL;
}

static int client(const char *ca, int conns)
{
	ctx = SSL_CTX_new(TLS_client_method());
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1)
		die("CA");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	pthread_t t[256];
	double t0 = now_s();
	for (int i = 0; i < conns; i++)
		pthread_create(&t[i], NULL, client_thread, NULL);
	for (int i = 0; i < conns; i++)
		pthread_join(t[i], NULL);
	printf("{\"calls\": %ld, \"seconds\": %.3f}\n", atomic_load(&total_calls), now_s() - t0);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && strcmp(argv[1], "serve") == 0) {
		load_wire(argv[4]);
		return serve(argv[2], argv[3]);
	}
	if (argc == 9 && strcmp(argv[1], "client") == 0) {
		port = atoi(argv[2]);
		load_wire(argv[4]);
		seconds = atof(argv[5]);
		per_conn = atoi(argv[7]);
		int conns = atoi(argv[6]);
		double rate = atof(argv[8]);
		gap_s = rate > 0 ? conns / rate : 0;
		if (conns < 1 || conns > 256 || per_conn < 1)
			die("bad CONNS or CALLS_PER_CONN");
		return client(argv[3], conns);
	}
	fprintf(stderr, "usage: loadsrv serve CERT KEY WIRE_DIR | "
			"loadgen client PORT CA WIRE_DIR SECONDS CONNS CALLS_PER_CONN RATE\n");
	return 2;
}
