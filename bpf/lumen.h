/* lumen.h: the one contract between the BPF program and user space.
 *
 * lumen_sniff/capture/records.py mirrors struct lumen_record with ctypes and
 * tests/unit/test_bpf_layout.py checks size and offsets against this file,
 * compiled for real. Not packed: every field is naturally aligned.
 *
 * Settings arrive as -D defines from the loader (lumen_sniff/capture/bpf.py);
 * the defaults below only serve the layout test and a hand compile.
 */
#ifndef LUMEN_H
#define LUMEN_H

#include <linux/types.h>

#ifndef LUMEN_CHUNK_BYTES
#define LUMEN_CHUNK_BYTES 16384 /* payload bytes per record */
#endif

#define LUMEN_COMM_LEN 16

/* struct lumen_record.kind */
#define LUMEN_KIND_DATA 0  /* plaintext from SSL_write/SSL_read */
#define LUMEN_KIND_CLOSE 1 /* SSL_free on a connection that carried data */
#define LUMEN_KIND_EXEC 2  /* sched_process_exec: rescan this pid's maps */
#define LUMEN_KIND_MMAP 3  /* executable file mapping (dlopen): rescan this pid */
#define LUMEN_KIND_EXIT 4  /* process leader exited: its connections are gone */

/* struct lumen_record.direction (same values as model.Direction) */
#define LUMEN_DIR_EGRESS 0  /* SSL_write, SSL_write_ex */
#define LUMEN_DIR_INGRESS 1 /* SSL_read, SSL_read_ex */

/* Index into the drop counters array (bpf table "drops"). */
#define LUMEN_DROP_RINGBUF_FULL 0 /* bpf_ringbuf_output failed */
#define LUMEN_DROP_CAP_EXCEEDED 1 /* bytes past the per-call cap */
#define LUMEN_DROP_READ_FAILED 2  /* bpf_probe_read_user failed */
#define LUMEN_DROP_BUDGET 3       /* past a non-LLM connection's copy budget: not
                                   * copied by design, so not a loss of LLM data */
#define LUMEN_DROP_REASONS 4

struct lumen_drop {
	__u64 records; /* records (or calls) affected */
	__u64 bytes;   /* payload bytes not delivered */
};

/* Header of every ring-buffer record; data_len payload bytes follow it. */
struct lumen_record {
	__u64 ts_ns;      /* bpf_ktime_get_ns (CLOCK_MONOTONIC); user space makes it wall clock */
	__u64 ssl;        /* the SSL* (0 for process records) */
	__u64 offset;     /* position of data[0] in this direction's byte stream */
	__u64 lost_bytes; /* bytes of the same call after data that were not copied */
	__u64 cgroup_id;  /* bpf_get_current_cgroup_id */
	__u32 pid;        /* tgid */
	__u32 tid;        /* thread id */
	__u32 uid;        /* real uid */
	__u32 data_len;   /* payload bytes following this header */
	__u8 kind;        /* LUMEN_KIND_* */
	__u8 direction;   /* LUMEN_DIR_* */
	__u8 pad[6];
	char comm[LUMEN_COMM_LEN]; /* comm of the process leader, NUL padded */
};

/* ---- The copy budget: which request paths may be LLM API calls ----
 * The first bytes of either direction of a connection (a hooked client's first
 * write, a hooked server's first read) are judged in the kernel when they hold
 * an HTTP/1 request line. Its path (up to '?' or ' ') is looked up in the
 * "lumen_paths" LPM trie once at its start and once at every later '/': an entry
 * flagged LUMEN_PATH_AT_START matches only at the start, LUMEN_PATH_ANYWHERE at
 * any '/'. A path that matches nothing puts the connection on the copy budget.
 * User space fills the trie from the API family rows (no provider knowledge here).
 */
#define LUMEN_PATH_BYTES 32 /* longest needle; a longer one is cut (a shorter needle
                             * matches more paths: safe) */
#define LUMEN_PATH_AT_START 1
#define LUMEN_PATH_ANYWHERE 2

struct lumen_path_key {
	__u32 prefixlen; /* in bits, as the LPM trie wants */
	__u8 data[LUMEN_PATH_BYTES];
};

/* Connection key in the offsets and ignored maps: (tgid, SSL*). */
struct lumen_conn {
	__u32 pid;
	__u32 pad;
	__u64 ssl;
};

/* ---- TLS connections (bpf/lumen_sockets.bpf.c): who opens TLS, to which host ----
 * Records of the "lumen_sockets" ring buffer. A HELLO carries the first TCP
 * payload of a new client connection when it is a TLS ClientHello (user space
 * reads its SNI); a SOCK_CLOSE carries the byte counts of such a connection when
 * it leaves ESTABLISHED. Addresses are IPv6, IPv4 as ::ffff:a.b.c.d.
 */
#ifndef LUMEN_HELLO_BYTES
#define LUMEN_HELLO_BYTES 2048 /* ClientHello bytes copied (SNI is near the start) */
#endif

/* struct lumen_sock_event.kind */
#define LUMEN_SOCK_HELLO 1
#define LUMEN_SOCK_CLOSE 2

/* Index into the counters array (bpf table "lumen_sock_counts"). */
#define LUMEN_SOCK_CONNECTS 0     /* client connections established */
#define LUMEN_SOCK_HELLOS 1       /* first payloads that were ClientHellos */
#define LUMEN_SOCK_NOT_TLS 2      /* first payloads that were not */
#define LUMEN_SOCK_RINGBUF_FULL 3 /* records lost: ring buffer full */
#define LUMEN_SOCK_UNKNOWN 4      /* connections established with no connecting process */
#define LUMEN_SOCK_COUNTERS 5

/* The 4-tuple of a TCP connection as its client sees it. */
struct lumen_tuple {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport; /* host byte order */
	__u16 dport; /* host byte order */
	__u32 pad;
};

/* Who connected, saved at SYN_SENT (process context) and kept with the socket. */
struct lumen_sock_owner {
	__u64 ts_ns;
	__u64 sock; /* kernel socket address */
	__u64 cgroup_id;
	__u32 pid; /* tgid */
	__u32 uid;
	char comm[LUMEN_COMM_LEN];
};

struct lumen_sock_event {
	__u64 ts_ns;          /* bpf_ktime_get_ns */
	__u64 sock;           /* kernel socket address: pairs a HELLO with its CLOSE */
	__u64 cgroup_id;
	__u64 bytes_sent;     /* SOCK_CLOSE: tcp_sock bytes_sent (0 when unknown) */
	__u64 bytes_received; /* SOCK_CLOSE: tcp_sock bytes_received */
	struct lumen_tuple tuple;
	__u32 pid;
	__u32 uid;
	__u32 data_len; /* HELLO: valid bytes of data */
	__u8 kind;      /* LUMEN_SOCK_* */
	__u8 pad[3];
	char comm[LUMEN_COMM_LEN];
	__u8 data[LUMEN_HELLO_BYTES];
};

#endif /* LUMEN_H */
