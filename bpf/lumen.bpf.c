// SPDX-License-Identifier: Apache-2.0
/* lumen.bpf.c: copy TLS plaintext from SSL_write/SSL_read into a ring buffer.
 *
 * Strategy:
 *  - Entry probes save (SSL*, buf, size_t *len) keyed by (thread, direction);
 *    the return probe learns the byte count (the return value, or what the _ex
 *    calls store through their size_t pointer) and copies that many bytes.
 *    Calls of opposite directions do nest: node writes from a callback that
 *    runs inside SSL_read (a session ticket arriving), so a write and a read
 *    each have their own slot. An entry that finds its direction's slot taken
 *    belongs to a same-direction nested call (a wrapper calling another SSL
 *    function): the outer call keeps the slot and only its own return consumes
 *    it, so no byte is counted twice. A thread's slots are freed when it exits,
 *    so a thread killed inside SSL_read leaves nothing behind for a reused tid.
 *  - Connections are keyed by (tgid, SSL*). A per-connection LRU entry holds the
 *    next byte offset of each direction, so user space sees gaps as offset jumps.
 *  - A call is copied in LUMEN_CHUNK_BYTES records up to LUMEN_CAP_BYTES; what
 *    is not copied is reported on the record (lost_bytes) and in the drop
 *    counters, by reason. Nothing is dropped without a count.
 *  - The copy budget: at the first bytes of either direction of a connection
 *    (offset 0: a client's first write, a server's first read) an HTTP/1
 *    request line is judged here (judge_head): a path that no LLM API
 *    path can be (the "lumen_paths" trie, filled by user space from the API
 *    family rows) puts the connection on a budget of LUMEN_BUDGET_BYTES copied
 *    bytes (and LUMEN_BUDGET_CALLS calls) per direction; past it its calls are
 *    only counted (LUMEN_DROP_BUDGET)
 *    and user space sees a gap of exactly that many bytes (an HTTP/1 body of
 *    known length keeps its framing across it). Per direction, so the small
 *    response to a big upload is still copied whole. A later call that
 *    starts with a request line whose path may be LLM lifts the budget
 *    (keep-alive: GET /health, then POST /v1/chat/completions). A connection
 *    whose very first call (16+ bytes) cannot start HTTP at all (its first byte
 *    is not A-Z: no method, no "PRI *" of HTTP/2) gets only that call copied,
 *    for user space to judge; a later request line that may be LLM lifts that
 *    too. Anything else (HTTP/2, a proxy's absolute form, a path longer than
 *    LUMEN_HEAD_BYTES, bytes starting A-Z) is copied until user space judges
 *    it, as before.
 *  - Connections user space judged not to be LLM traffic sit in lumen_ignored:
 *    the entry probe bails after that one lookup and the return probe after its
 *    one lookup of the (absent) call slot.
 *  - User space is woken per batch (LUMEN_WAKEUP_RECORDS records or
 *    LUMEN_WAKEUP_BYTES bytes per CPU), or by the first record it has not
 *    seen while it sleeps (the kernel's adaptive wake-up: only when the
 *    consumer has caught up), never per record of a busy stream. So user
 *    space blocks with nothing to do instead of polling on a timer.
 *  - Process events (exec, executable file mappings, exit) drive target
 *    discovery and state release in user space.
 *
 * Settings come as -D defines from lumen_sniff/capture/bpf.py.
 */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/mman.h>

#include "lumen.h"

#ifndef LUMEN_CAP_BYTES
#define LUMEN_CAP_BYTES (1 << 20)
#endif
#ifndef LUMEN_MAX_CHUNKS
#define LUMEN_MAX_CHUNKS ((LUMEN_CAP_BYTES + LUMEN_CHUNK_BYTES - 1) / LUMEN_CHUNK_BYTES)
#endif
#ifndef LUMEN_RINGBUF_PAGES
#define LUMEN_RINGBUF_PAGES 4096
#endif
#ifndef LUMEN_WAKEUP_RECORDS
#define LUMEN_WAKEUP_RECORDS 64
#endif
#ifndef LUMEN_WAKEUP_BYTES
#define LUMEN_WAKEUP_BYTES (256 * 1024)
#endif
#ifndef LUMEN_MAX_CONNS
#define LUMEN_MAX_CONNS 65536
#endif
#ifndef LUMEN_MAX_THREADS
#define LUMEN_MAX_THREADS 16384
#endif
#ifndef LUMEN_MAX_PIDS
#define LUMEN_MAX_PIDS 16384
#endif
#ifndef LUMEN_BUDGET_BYTES
#define LUMEN_BUDGET_BYTES (32 * 1024) /* per direction; 0: judge nothing */
#endif
#ifndef LUMEN_BUDGET_CALLS
#define LUMEN_BUDGET_CALLS 16 /* per direction: small calls spend a call budget first */
#endif
#ifndef LUMEN_MAX_PATHS
#define LUMEN_MAX_PATHS 1024
#endif
#define LUMEN_HEAD_BYTES 136 /* request bytes judged: the path must end within them */

#define FN_WRITE 1
#define FN_WRITE_EX 2
#define FN_READ 3
#define FN_READ_EX 4

/* Arguments of an SSL call in flight, saved at entry. */
struct lumen_call {
	u64 ssl;
	u64 buf;
	u64 len_ptr; /* size_t *written / *readbytes of the _ex calls */
	u32 fn;
	u32 pad;
};

/* Key of the in-flight call table. */
struct lumen_slot {
	u64 pid_tgid;
	u32 dir;
	u32 pad;
};

struct lumen_offsets {
	u64 next[2];     /* next byte offset, per direction */
	u32 budget_left[2]; /* bytes still copied while budgeted, per direction */
	u32 budgeted;       /* the request line judged last could not be an LLM call */
	u16 calls_left[2];  /* calls still copied while budgeted, per direction; 32
	                     * bytes in all: 65536 of them are preallocated */
};

/* The first bytes of a call, for judge_head; room for a path key read
 * at the last judged byte. */
struct lumen_head {
	u8 data[LUMEN_HEAD_BYTES + LUMEN_PATH_BYTES];
	u32 start;   /* where the path starts in data */
	u32 room;    /* bytes read from the path's start */
	u32 verdict; /* HEAD_*: the scan's result */
	u32 pad;
};

struct lumen_wake {
	u64 records;
	u64 bytes;
};

struct lumen_scratch {
	struct lumen_record hdr;
	u8 data[LUMEN_CHUNK_BYTES];
};

BPF_RINGBUF_OUTPUT(lumen_events, LUMEN_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(lumen_scratch_map, struct lumen_scratch, 1);
BPF_PERCPU_ARRAY(lumen_wake_map, struct lumen_wake, 1);
BPF_PERCPU_ARRAY(lumen_drops, struct lumen_drop, LUMEN_DROP_REASONS);
BPF_TABLE("lru_hash", struct lumen_slot, struct lumen_call, lumen_calls, LUMEN_MAX_THREADS);
BPF_TABLE("lru_hash", struct lumen_conn, struct lumen_offsets, lumen_offsets, LUMEN_MAX_CONNS);
BPF_TABLE("lru_hash", struct lumen_conn, u8, lumen_ignored, LUMEN_MAX_CONNS);
BPF_TABLE("lru_hash", u32, u8, lumen_skip, LUMEN_MAX_PIDS);
BPF_PERCPU_ARRAY(lumen_head_map, struct lumen_head, 1);
BPF_LPM_TRIE(lumen_paths, struct lumen_path_key, u8, LUMEN_MAX_PATHS);

static __always_inline void count_drop(u32 reason, u64 bytes)
{
	struct lumen_drop *d = lumen_drops.lookup(&reason);
	if (d) {
		d->records += 1;
		d->bytes += bytes;
	}
}

/* Batch wake-ups: flags 0 lets the kernel wake a consumer that has caught up
 * (an idle daemon); one still reading is not woken again until a batch is full. */
static __always_inline u64 wake_flags(u64 size)
{
	int zero = 0;
	struct lumen_wake *w = lumen_wake_map.lookup(&zero);
	if (!w)
		return 0;
	w->records += 1;
	w->bytes += size;
	if (w->records >= LUMEN_WAKEUP_RECORDS || w->bytes >= LUMEN_WAKEUP_BYTES) {
		w->records = 0;
		w->bytes = 0;
		return BPF_RB_FORCE_WAKEUP;
	}
	return 0;
}

static __always_inline void fill_header(struct lumen_record *h, u8 kind, u64 id)
{
	h->ts_ns = bpf_ktime_get_ns();
	h->ssl = 0;
	h->offset = 0;
	h->lost_bytes = 0;
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->pid = id >> 32;
	h->tid = (u32)id;
	h->uid = (u32)bpf_get_current_uid_gid();
	h->data_len = 0;
	h->kind = kind;
	h->direction = 0;
#if defined(LUMEN_TASK_GROUP_LEADER_OFF) && defined(LUMEN_TASK_COMM_OFF)
	/* The leader's comm, not the thread's: offsets come from the running
	 * kernel's BTF because the compile-time headers may be another version. */
	void *task = (void *)bpf_get_current_task();
	void *leader = 0;
	if (bpf_probe_read_kernel(&leader, sizeof(leader), task + LUMEN_TASK_GROUP_LEADER_OFF) ||
	    !leader ||
	    bpf_probe_read_kernel(h->comm, sizeof(h->comm), leader + LUMEN_TASK_COMM_OFF))
		bpf_get_current_comm(h->comm, sizeof(h->comm));
#else
	bpf_get_current_comm(h->comm, sizeof(h->comm));
#endif
}

static __always_inline u32 fn_dir(u32 fn)
{
	return (fn == FN_WRITE || fn == FN_WRITE_EX) ? LUMEN_DIR_EGRESS : LUMEN_DIR_INGRESS;
}

static __always_inline int enter(struct pt_regs *ctx, u32 fn)
{
#ifdef LUMEN_EMPTY_PROBES
	return 0;
#endif
	u64 id = bpf_get_current_pid_tgid();
	struct lumen_conn conn = {};
	conn.pid = id >> 32;
	conn.ssl = PT_REGS_PARM1(ctx);
	if (lumen_ignored.lookup(&conn))
		return 0;
	if (lumen_skip.lookup(&conn.pid))
		return 0;
	struct lumen_call call = {};
	call.ssl = conn.ssl;
	call.buf = PT_REGS_PARM2(ctx);
	call.fn = fn;
	if (fn == FN_WRITE_EX || fn == FN_READ_EX)
		call.len_ptr = PT_REGS_PARM4(ctx);
	struct lumen_slot slot = {};
	slot.pid_tgid = id;
	slot.dir = fn_dir(fn);
	lumen_calls.insert(&slot, &call);
	return 0;
}

#define HEAD_UNKNOWN 0 /* not a request line we can judge: copy */
#define HEAD_MAY_BE_LLM 1
#define HEAD_NOT_LLM 2
#define HEAD_NOT_HTTP 3 /* cannot start an HTTP/1 or HTTP/2 stream (a 16+ byte call
			 * whose first byte is not A-Z): not an LLM API call */

/* Where the path of an HTTP/1 request line starts (the '/' after "METHOD "),
 * or 0. Constant indexes only: the verifier refuses a variable one on the stack. */
static __always_inline u32 path_start(const u8 *b)
{
	if (b[0] == 'G' && b[1] == 'E' && b[2] == 'T' && b[3] == ' ' && b[4] == '/')
		return 4;
	if (b[0] == 'P' && b[1] == 'U' && b[2] == 'T' && b[3] == ' ' && b[4] == '/')
		return 4;
	if (b[0] == 'P' && b[1] == 'O' && b[2] == 'S' && b[3] == 'T' && b[4] == ' ' && b[5] == '/')
		return 5;
	if (b[0] == 'H' && b[1] == 'E' && b[2] == 'A' && b[3] == 'D' && b[4] == ' ' && b[5] == '/')
		return 5;
	if (b[0] == 'P' && b[1] == 'A' && b[2] == 'T' && b[3] == 'C' && b[4] == 'H' &&
	    b[5] == ' ' && b[6] == '/')
		return 6;
	if (b[0] == 'D' && b[1] == 'E' && b[2] == 'L' && b[3] == 'E' && b[4] == 'T' &&
	    b[5] == 'E' && b[6] == ' ' && b[7] == '/')
		return 7;
	if (b[0] == 'O' && b[1] == 'P' && b[2] == 'T' && b[3] == 'I' && b[4] == 'O' &&
	    b[5] == 'N' && b[6] == 'S' && b[7] == ' ' && b[8] == '/')
		return 8;
	return 0; /* no method, HTTP/2's "PRI *", a proxy's "http://", bytes */
}

/* One step of the path scan, as a bpf_loop callback: the verifier checks this
 * body once, not once per unrolled iteration in every probe that judges (an
 * unrolled 128-step loop cost ~30 ms of verification per program, and the Go
 * read program outgrew the verifier's limits). bcc passes a non-static function
 * its first argument as "ctx": here it is the loop index (R1); the state is in
 * the per-CPU lumen_head_map (R2, the callback context, is unused). bcc emits
 * the callback as a function of its own; the compile child links it into every
 * program that calls bpf_loop (capture/bpf/runtime/compiler.py). */
int lumen_cb_judge_step(struct pt_regs *ctx)
{
	u32 i = (u32)(u64)ctx;
	int zero = 0;
	struct lumen_head *h = lumen_head_map.lookup(&zero);
	if (!h)
		return 1;
	if (i >= h->room) {
		h->verdict = HEAD_UNKNOWN; /* the path goes on past what was read */
		return 1;
	}
	u32 at = h->start + i;
	if (at >= LUMEN_HEAD_BYTES)
		return 1;
	u8 ch = h->data[at];
	if (ch == ' ' || ch == '?' || ch == '\r' || ch == '\n') {
		h->verdict = HEAD_NOT_LLM; /* the whole path seen, nothing matched */
		return 1;
	}
	if (ch != '/')
		return 0;
	/* Bytes past len may be stale, but a needle never spans the path's end
	 * (it holds no ' ' or '?'), and a match there only means "copy". */
	struct lumen_path_key key = {};
	key.prefixlen = LUMEN_PATH_BYTES * 8;
	if (bpf_probe_read_kernel(key.data, LUMEN_PATH_BYTES, &h->data[at])) {
		h->verdict = HEAD_UNKNOWN;
		return 1;
	}
	u8 *flags = lumen_paths.lookup(&key);
	if (flags && (i == 0 || (*flags & LUMEN_PATH_ANYWHERE))) {
		h->verdict = HEAD_MAY_BE_LLM;
		return 1;
	}
	return 0;
}

/* Judge the request line a call starts with (see the strategy above).
 * Only a path that ends (' ' or '?') within LUMEN_HEAD_BYTES and matches no
 * needle is HEAD_NOT_LLM: every doubt is "copy". */
static __always_inline u32 judge_head(u64 buf, u64 n)
{
	u8 first[16] = {};
	if (n < sizeof(first) || bpf_probe_read_user(first, sizeof(first), (void *)buf))
		return HEAD_UNKNOWN;
	u32 start = path_start(first);
	if (!start) /* every HTTP/1 method, "PRI *" (h2) and "HTTP/" start A-Z */
		return (first[0] < 'A' || first[0] > 'Z') ? HEAD_NOT_HTTP : HEAD_UNKNOWN;
	int zero = 0;
	struct lumen_head *h = lumen_head_map.lookup(&zero);
	if (!h)
		return HEAD_UNKNOWN;
	u32 len = n < LUMEN_HEAD_BYTES ? n : LUMEN_HEAD_BYTES;
	if (len > LUMEN_HEAD_BYTES || bpf_probe_read_user(h->data, len, (void *)buf))
		return HEAD_UNKNOWN;
	h->start = start;
	h->room = len - start;
	h->verdict = HEAD_UNKNOWN; /* a scan that runs out of steps: copy */
	bpf_loop(LUMEN_HEAD_BYTES - 8, lumen_cb_judge_step, 0, 0);
	return h->verdict;
}

/* The bytes of this call that may be copied: all (up to the per-call cap), or
 * what is left of the connection's budget. Sets *reason for the rest. */
static __always_inline u64 copy_limit(struct lumen_offsets *o, struct lumen_call *c, u32 dir,
				      u64 base, u64 n, u32 *reason)
{
	*reason = LUMEN_DROP_CAP_EXCEEDED;
#if LUMEN_BUDGET_BYTES > 0
	/* Both directions: a hooked client's request line is its first egress, a
	 * hooked server's its first ingress (the request it reads). A response
	 * ("HTTP/1.1 ...") is never a request line, so it changes nothing. */
	if (base == 0 || o->budgeted) {
		u32 verdict = judge_head(c->buf, n);
		/* The connection's very first call (nothing yet either way): its
		 * bytes are copied so user space can judge them, and that is all. */
		if (verdict == HEAD_NOT_HTTP && base == 0 && o->next[0] + o->next[1] == n) {
			o->budgeted = 1;
			o->budget_left[0] = 0;
			o->budget_left[1] = 0;
			o->budget_left[dir & 1] = n < LUMEN_BUDGET_BYTES ? n : LUMEN_BUDGET_BYTES;
			o->calls_left[0] = 0;
			o->calls_left[1] = 0;
			o->calls_left[dir & 1] = 1;
		} else if (verdict == HEAD_NOT_LLM && base == 0) {
			o->budgeted = 1;
			o->budget_left[0] = LUMEN_BUDGET_BYTES;
			o->budget_left[1] = LUMEN_BUDGET_BYTES;
			o->calls_left[0] = LUMEN_BUDGET_CALLS;
			o->calls_left[1] = LUMEN_BUDGET_CALLS;
		} else if (verdict == HEAD_MAY_BE_LLM) {
			o->budgeted = 0;
		}
	}
	if (o->budgeted) {
		/* Bytes or calls, whichever runs out first: 64-byte round trips would
		 * otherwise copy ~500 records per direction, each a ring record and a
		 * wake-up for user space to parse, on a connection known not to be LLM. */
		u32 *left = &o->budget_left[dir & 1];
		u16 *calls = &o->calls_left[dir & 1];
		if (*calls)
			*calls -= 1;
		else
			*left = 0;
		u64 take = n < *left ? n : *left;
		*left -= (u32)take;
		if (take < LUMEN_CAP_BYTES) {
			*reason = LUMEN_DROP_BUDGET;
			return take;
		}
	}
#endif
	return LUMEN_CAP_BYTES;
}

static __always_inline int emit_data(struct lumen_call *c, u32 dir, u64 n, u64 id)
{
	int zero = 0;
	struct lumen_conn conn = {};
	conn.pid = id >> 32;
	conn.ssl = c->ssl;
	/* Look up first: an insert into an LRU map takes a free node (and puts it
	 * back) even when the key exists, on every call. */
	struct lumen_offsets *o = lumen_offsets.lookup(&conn);
	if (!o) {
		struct lumen_offsets fresh = {};
		lumen_offsets.insert(&conn, &fresh);
		o = lumen_offsets.lookup(&conn);
		if (!o)
			return 0;
	}
	u64 base;
	if (dir == LUMEN_DIR_EGRESS) {
		base = o->next[0];
		o->next[0] = base + n;
	} else {
		base = o->next[1];
		o->next[1] = base + n;
	}
	u32 cut_reason;
	u64 limit = copy_limit(o, c, dir, base, n, &cut_reason);
	if (limit == 0) {
		/* Budget spent: no record; the next one's offset shows the gap. */
		count_drop(LUMEN_DROP_BUDGET, n);
		return 0;
	}
	struct lumen_scratch *s = lumen_scratch_map.lookup(&zero);
	if (!s)
		return 0;

	fill_header(&s->hdr, LUMEN_KIND_DATA, id);
	s->hdr.ssl = c->ssl;
	s->hdr.direction = dir;
	u64 copied = n < limit ? n : limit;
	if (copied > LUMEN_CAP_BYTES)
		copied = LUMEN_CAP_BYTES;
	u64 buf = c->buf;
	/* Whole chunks in the loop, the last (partial or whole) piece after it: the
	 * loop body has one size and few branches, which keeps verification linear. */
	u64 full = copied / LUMEN_CHUNK_BYTES;
	u64 rest = copied - full * LUMEN_CHUNK_BYTES;
	if (rest == 0 && full > 0) {
		full -= 1;
		rest = LUMEN_CHUNK_BYTES;
	}
	u64 flags = wake_flags(copied + (full + 1) * sizeof(s->hdr));
	u64 rb_failed_chunks = 0;
	u64 rb_failed_bytes = 0;
	u64 pos = 0;
	s->hdr.lost_bytes = 0;
	s->hdr.data_len = LUMEN_CHUNK_BYTES;
	for (u32 i = 0; i < LUMEN_MAX_CHUNKS; i++) {
		if (i >= full)
			break;
		pos = (u64)i * LUMEN_CHUNK_BYTES;
		s->hdr.offset = base + pos;
		if (bpf_probe_read_user(s->data, LUMEN_CHUNK_BYTES, (void *)(buf + pos)))
			goto read_failed;
		/* Branch-free failure count (negative errno → 1): a branch here would
		 * double the verifier's paths at every iteration. */
		long rc = lumen_events.ringbuf_output(s, sizeof(*s), flags);
		rb_failed_chunks += ((u64)rc) >> 63;
	}
	rb_failed_bytes = rb_failed_chunks * LUMEN_CHUNK_BYTES;
	pos = full * LUMEN_CHUNK_BYTES;
	s->hdr.offset = base + pos;
	s->hdr.lost_bytes = n - copied;
	if (n > copied)
		count_drop(cut_reason, n - copied);
	u32 len = rest;
	if (len > LUMEN_CHUNK_BYTES)
		return 0; /* unreachable; bounds len for the verifier */
	if (bpf_probe_read_user(s->data, len, (void *)(buf + pos)))
		goto read_failed;
	s->hdr.data_len = len;
	if (lumen_events.ringbuf_output(s, sizeof(s->hdr) + len, flags))
		rb_failed_bytes += len + n - copied;
	if (rb_failed_bytes)
		count_drop(LUMEN_DROP_RINGBUF_FULL, rb_failed_bytes);
	return 0;

read_failed:
	/* Report the rest of the call as lost on an empty record. */
	rb_failed_bytes = rb_failed_chunks * LUMEN_CHUNK_BYTES;
	count_drop(LUMEN_DROP_READ_FAILED, n - pos);
	s->hdr.data_len = 0;
	s->hdr.offset = base + pos;
	s->hdr.lost_bytes = n - pos;
	if (lumen_events.ringbuf_output(&s->hdr, sizeof(s->hdr), flags))
		count_drop(LUMEN_DROP_RINGBUF_FULL, 0);
	if (rb_failed_bytes)
		count_drop(LUMEN_DROP_RINGBUF_FULL, rb_failed_bytes);
	return 0;
}

static __always_inline int leave(struct pt_regs *ctx, u32 fn)
{
#ifdef LUMEN_EMPTY_PROBES
	return 0;
#endif
	u64 id = bpf_get_current_pid_tgid();
	struct lumen_slot key = {};
	key.pid_tgid = id;
	key.dir = fn_dir(fn);
	struct lumen_call *slot = lumen_calls.lookup(&key);
	if (!slot)
		return 0;
	if (slot->fn != fn)
		return 0; /* a nested call returning: the outer call owns the slot */
	struct lumen_call c = *slot;
	lumen_calls.delete(&key);

	u64 n = 0;
	if (fn == FN_WRITE_EX || fn == FN_READ_EX) {
		if ((int)PT_REGS_RC(ctx) != 1)
			return 0;
		size_t done = 0;
		if (bpf_probe_read_user(&done, sizeof(done), (void *)c.len_ptr)) {
			count_drop(LUMEN_DROP_READ_FAILED, 0);
			return 0;
		}
		n = done;
	} else {
		int rc = (int)PT_REGS_RC(ctx);
		if (rc <= 0)
			return 0;
		n = rc;
	}
	return emit_data(&c, key.dir, n, id);
}

int lumen_enter_ssl_write(struct pt_regs *ctx) { return enter(ctx, FN_WRITE); }
int lumen_leave_ssl_write(struct pt_regs *ctx) { return leave(ctx, FN_WRITE); }
int lumen_enter_ssl_write_ex(struct pt_regs *ctx) { return enter(ctx, FN_WRITE_EX); }
int lumen_leave_ssl_write_ex(struct pt_regs *ctx) { return leave(ctx, FN_WRITE_EX); }
int lumen_enter_ssl_read(struct pt_regs *ctx) { return enter(ctx, FN_READ); }
int lumen_leave_ssl_read(struct pt_regs *ctx) { return leave(ctx, FN_READ); }
int lumen_enter_ssl_read_ex(struct pt_regs *ctx) { return enter(ctx, FN_READ_EX); }
int lumen_leave_ssl_read_ex(struct pt_regs *ctx) { return leave(ctx, FN_READ_EX); }
/* GnuTLS: gnutls_record_send/recv(session, data, size) -> ssize_t, as SSL_write/read. */
int lumen_enter_gnutls_record_send(struct pt_regs *ctx) { return enter(ctx, FN_WRITE); }
int lumen_leave_gnutls_record_send(struct pt_regs *ctx) { return leave(ctx, FN_WRITE); }
int lumen_enter_gnutls_record_recv(struct pt_regs *ctx) { return enter(ctx, FN_READ); }
int lumen_leave_gnutls_record_recv(struct pt_regs *ctx) { return leave(ctx, FN_READ); }

/* SSL_free (and its kin): say "closed" for a connection that carried data,
 * release its state. Ignored connections are closed too: the allocator hands the
 * same handle to the next connection, and user space must not take that one for
 * the ignored one. */
static __always_inline int close_conn(u64 handle)
{
#ifdef LUMEN_EMPTY_PROBES
	return 0;
#endif
	u64 id = bpf_get_current_pid_tgid();
	struct lumen_conn conn = {};
	conn.pid = id >> 32;
	conn.ssl = handle;
	lumen_ignored.delete(&conn);
	struct lumen_offsets *o = lumen_offsets.lookup(&conn);
	if (!o)
		return 0;
	struct lumen_record h = {};
	fill_header(&h, LUMEN_KIND_CLOSE, id);
	h.ssl = conn.ssl;
	h.offset = o->next[0];
	lumen_offsets.delete(&conn);
	if (lumen_events.ringbuf_output(&h, sizeof(h), wake_flags(sizeof(h))))
		count_drop(LUMEN_DROP_RINGBUF_FULL, 0);
	return 0;
}

int lumen_enter_ssl_free(struct pt_regs *ctx) { return close_conn(PT_REGS_PARM1(ctx)); }
int lumen_enter_gnutls_deinit(struct pt_regs *ctx) { return close_conn(PT_REGS_PARM1(ctx)); }

/* Go crypto/tls.
 *
 * Strategy:
 *  - (*Conn).Write and (*Conn).Read get a uprobe at entry and one at every RET
 *    (lumen_sniff/capture/golang/locate.py finds and checks them). Never a
 *    uretprobe: it rewrites the return address on the goroutine's stack, and Go
 *    moves stacks, which then crashes the program.
 *  - Go >= 1.17 register ABI (ABIInternal, amd64): receiver in RAX, the slice's
 *    pointer and length in RBX and RCX; at return, n in RAX (err in RBX/RCX).
 *    R14 always holds the running goroutine's g.
 *  - A goroutine that blocks inside Read may resume on another thread, so the
 *    call in flight is keyed by (tgid, g, direction), not by thread. An entry
 *    overwrites its slot: crypto/tls never nests Write or Read within itself, and
 *    the morestack path re-enters the function from its first byte with the same
 *    arguments.
 *  - Connections are keyed by (tgid, *tls.Conn): Go's heap does not move objects.
 *    (*Conn).Close ends the connection like SSL_free.
 */

struct lumen_go_slot {
	u64 g;    /* the goroutine (R14) */
	u32 pid;  /* tgid */
	u32 dir;  /* LUMEN_DIR_* */
};

/* Goroutines, not threads: a Go server keeps one goroutine blocked in Read per
 * connection, so this is sized for connections. An evicted slot loses that call. */
#ifndef LUMEN_MAX_GOROUTINES
#define LUMEN_MAX_GOROUTINES 65536
#endif
BPF_TABLE("lru_hash", struct lumen_go_slot, struct lumen_call, lumen_go_calls, LUMEN_MAX_GOROUTINES);

static __always_inline int go_enter(struct pt_regs *ctx, u32 fn)
{
#ifdef LUMEN_EMPTY_PROBES
	return 0;
#endif
	u64 id = bpf_get_current_pid_tgid();
	struct lumen_conn conn = {};
	conn.pid = id >> 32;
	conn.ssl = ctx->ax;
	if (lumen_ignored.lookup(&conn))
		return 0;
	if (lumen_skip.lookup(&conn.pid))
		return 0;
	struct lumen_call call = {};
	call.ssl = conn.ssl;
	call.buf = ctx->bx;
	call.fn = fn;
	struct lumen_go_slot slot = {};
	slot.g = ctx->r14;
	slot.pid = conn.pid;
	slot.dir = fn_dir(fn);
	lumen_go_calls.update(&slot, &call);
	return 0;
}

static __always_inline int go_leave(struct pt_regs *ctx, u32 fn)
{
#ifdef LUMEN_EMPTY_PROBES
	return 0;
#endif
	u64 id = bpf_get_current_pid_tgid();
	struct lumen_go_slot key = {};
	key.g = ctx->r14;
	key.pid = id >> 32;
	key.dir = fn_dir(fn);
	struct lumen_call *slot = lumen_go_calls.lookup(&key);
	if (!slot)
		return 0;
	struct lumen_call c = *slot;
	lumen_go_calls.delete(&key);
	long n = (long)ctx->ax;
	if (n <= 0)
		return 0;
	return emit_data(&c, key.dir, (u64)n, id);
}

int lumen_go_enter_write(struct pt_regs *ctx) { return go_enter(ctx, FN_WRITE); }
int lumen_go_ret_write(struct pt_regs *ctx) { return go_leave(ctx, FN_WRITE); }
int lumen_go_enter_read(struct pt_regs *ctx) { return go_enter(ctx, FN_READ); }
int lumen_go_ret_read(struct pt_regs *ctx) { return go_leave(ctx, FN_READ); }
int lumen_go_enter_close(struct pt_regs *ctx) { return close_conn(ctx->ax); }

static __always_inline void emit_process(u8 kind, u64 flags)
{
	struct lumen_record h = {};
	fill_header(&h, kind, bpf_get_current_pid_tgid());
	if (lumen_events.ringbuf_output(&h, sizeof(h), flags))
		count_drop(LUMEN_DROP_RINGBUF_FULL, 0);
}

/* A new program: user space looks for libssl and SSL_write in its maps. */
TRACEPOINT_PROBE(sched, sched_process_exec)
{
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	lumen_skip.delete(&pid); /* filters by comm/exe are judged again */
	emit_process(LUMEN_KIND_EXEC, BPF_RB_FORCE_WAKEUP);
	return 0;
}

/* An executable file mapping (dlopen of a TLS library, e.g. Python's lazy
 * `import ssl`): user space rescans the process. */
TRACEPOINT_PROBE(syscalls, sys_enter_mmap)
{
	if (!(args->prot & PROT_EXEC) || (long)args->fd < 0)
		return 0;
	emit_process(LUMEN_KIND_MMAP, BPF_RB_FORCE_WAKEUP);
	return 0;
}

/* A thread ended: free its call slots. The whole process is gone: user space
 * closes its connections. */
TRACEPOINT_PROBE(sched, sched_process_exit)
{
	struct lumen_slot slot = {};
	slot.pid_tgid = bpf_get_current_pid_tgid();
	lumen_calls.delete(&slot);
	slot.dir = LUMEN_DIR_INGRESS;
	lumen_calls.delete(&slot);
	if (!args->group_dead)
		return 0;
	u32 pid = slot.pid_tgid >> 32;
	lumen_skip.delete(&pid);
	emit_process(LUMEN_KIND_EXIT, 0);
	return 0;
}
