// SPDX-License-Identifier: Apache-2.0
/* lumen_sockets.bpf.c: which process opens TLS to which host (the blind-spot report).
 *
 * Strategy (no kprobes here: one tracepoint and one cgroup skb program):
 *  - sock:inet_sock_set_state to SYN_SENT runs in the connecting process: its
 *    tgid, uid, cgroup and leader comm are saved by socket (lumen_connecting).
 *  - SYN_SENT -> ESTABLISHED (usually in softirq, so no process there) moves
 *    that owner to lumen_fresh, keyed by the connection's 4-tuple: the only
 *    key the packet program can compute.
 *  - A CGROUP_SKB egress program on the root cgroup v2 sees every packet sent.
 *    It reads the IP and TCP headers and the first 6 payload bytes; only when
 *    they are a TLS handshake record holding a ClientHello does it look the
 *    tuple up in lumen_fresh. A fresh connection's ClientHello is copied (up to
 *    LUMEN_HELLO_BYTES of that segment) into the lumen_sockets ring buffer, and
 *    the socket moves to lumen_watch. Any other packet costs the header reads.
 *  - Leaving ESTABLISHED, a watched socket sends a SOCK_CLOSE with tcp_sock's
 *    byte counters (offsets from BTF, -D defines); a fresh one that never sent
 *    a ClientHello is counted as not TLS. Every map is an LRU: nothing leaks.
 *  - The packet program always lets the packet pass: it observes, never filters.
 *
 * Settings come as -D defines from lumen_sniff/capture/bpf/sockets.py.
 */
#include <uapi/linux/ptrace.h>
#include <uapi/linux/bpf.h>

#include "lumen.h"

#ifndef LUMEN_SOCK_RINGBUF_PAGES
#define LUMEN_SOCK_RINGBUF_PAGES 256
#endif
#ifndef LUMEN_MAX_SOCKS
#define LUMEN_MAX_SOCKS 16384
#endif

#define LUMEN_TCP_ESTABLISHED 1
#define LUMEN_TCP_SYN_SENT 2
#define LUMEN_IPPROTO_TCP 6

BPF_RINGBUF_OUTPUT(lumen_sockets, LUMEN_SOCK_RINGBUF_PAGES);
BPF_PERCPU_ARRAY(lumen_sock_counts, u64, LUMEN_SOCK_COUNTERS);
BPF_TABLE("lru_hash", u64, struct lumen_sock_owner, lumen_connecting, LUMEN_MAX_SOCKS);
BPF_TABLE("lru_hash", struct lumen_tuple, struct lumen_sock_owner, lumen_fresh, LUMEN_MAX_SOCKS);
BPF_TABLE("lru_hash", u64, struct lumen_sock_owner, lumen_watch, LUMEN_MAX_SOCKS);

static __always_inline void lumen_count(int index)
{
	u64 *value = lumen_sock_counts.lookup(&index);
	if (value)
		*value += 1;
}

static __always_inline void lumen_leader_comm(char *comm)
{
#if defined(LUMEN_TASK_GROUP_LEADER_OFF) && defined(LUMEN_TASK_COMM_OFF)
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	void *leader = NULL;
	bpf_probe_read_kernel(&leader, sizeof(leader), (void *)task + LUMEN_TASK_GROUP_LEADER_OFF);
	if (leader &&
	    bpf_probe_read_kernel(comm, LUMEN_COMM_LEN, leader + LUMEN_TASK_COMM_OFF) == 0)
		return;
#endif
	bpf_get_current_comm(comm, LUMEN_COMM_LEN);
}

static __always_inline void lumen_close_event(u64 sk, struct lumen_sock_owner *owner,
					      struct lumen_tuple *tuple)
{
	struct lumen_sock_event *ev = lumen_sockets.ringbuf_reserve(sizeof(*ev));
	if (!ev) {
		lumen_count(LUMEN_SOCK_RINGBUF_FULL);
		return;
	}
	ev->ts_ns = bpf_ktime_get_ns();
	ev->sock = sk;
	ev->cgroup_id = owner->cgroup_id;
	ev->bytes_sent = 0;
	ev->bytes_received = 0;
#if defined(LUMEN_TCP_BYTES_SENT_OFF) && defined(LUMEN_TCP_BYTES_RECEIVED_OFF)
	bpf_probe_read_kernel(&ev->bytes_sent, 8, (void *)sk + LUMEN_TCP_BYTES_SENT_OFF);
	bpf_probe_read_kernel(&ev->bytes_received, 8, (void *)sk + LUMEN_TCP_BYTES_RECEIVED_OFF);
#endif
	__builtin_memcpy(&ev->tuple, tuple, sizeof(*tuple));
	ev->pid = owner->pid;
	ev->uid = owner->uid;
	ev->data_len = 0;
	ev->kind = LUMEN_SOCK_CLOSE;
	__builtin_memcpy(ev->comm, owner->comm, LUMEN_COMM_LEN);
	lumen_sockets.ringbuf_submit(ev, 0);
}

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
	if (args->protocol != LUMEN_IPPROTO_TCP)
		return 0;
	u64 sk = (u64)args->skaddr;
	if (args->newstate == LUMEN_TCP_SYN_SENT) {
		struct lumen_sock_owner owner = {};
		owner.ts_ns = bpf_ktime_get_ns();
		owner.sock = sk;
		owner.cgroup_id = bpf_get_current_cgroup_id();
		owner.pid = bpf_get_current_pid_tgid() >> 32;
		owner.uid = (u32)bpf_get_current_uid_gid();
		lumen_leader_comm(owner.comm);
		lumen_connecting.update(&sk, &owner);
		return 0;
	}
	struct lumen_tuple tuple = {};
	__builtin_memcpy(tuple.saddr, args->saddr_v6, 16);
	__builtin_memcpy(tuple.daddr, args->daddr_v6, 16);
	tuple.sport = args->sport;
	tuple.dport = args->dport;
	if (args->oldstate == LUMEN_TCP_SYN_SENT) {
		struct lumen_sock_owner *owner = lumen_connecting.lookup(&sk);
		if (args->newstate == LUMEN_TCP_ESTABLISHED) {
			if (owner) {
				lumen_fresh.update(&tuple, owner);
				lumen_count(LUMEN_SOCK_CONNECTS);
			} else {
				lumen_count(LUMEN_SOCK_UNKNOWN);
			}
		}
		lumen_connecting.delete(&sk);
		return 0;
	}
	if (args->oldstate != LUMEN_TCP_ESTABLISHED)
		return 0;
	if (lumen_fresh.lookup(&tuple)) {
		lumen_fresh.delete(&tuple);
		lumen_count(LUMEN_SOCK_NOT_TLS);
	}
	struct lumen_sock_owner *watched = lumen_watch.lookup(&sk);
	if (watched) {
		lumen_close_event(sk, watched, &tuple);
		lumen_watch.delete(&sk);
	}
	return 0;
}

/* Loaded as BPF_PROG_TYPE_CGROUP_SKB, attached to the root cgroup's egress. */
int lumen_egress(struct __sk_buff *skb)
{
	u8 head[60];
	struct lumen_tuple tuple = {};
	u32 ip_len, payload_off;
	if (bpf_skb_load_bytes(skb, 0, head, 40) < 0)
		return 1;
	u8 version = head[0] >> 4;
	if (version == 4) {
		if (head[9] != LUMEN_IPPROTO_TCP)
			return 1;
		ip_len = (head[0] & 0x0f) * 4;
		tuple.saddr[10] = 0xff;
		tuple.saddr[11] = 0xff;
		tuple.daddr[10] = 0xff;
		tuple.daddr[11] = 0xff;
		__builtin_memcpy(&tuple.saddr[12], &head[12], 4);
		__builtin_memcpy(&tuple.daddr[12], &head[16], 4);
	} else if (version == 6) {
		if (head[6] != LUMEN_IPPROTO_TCP)
			return 1; /* extension headers: not followed */
		ip_len = 40;
		__builtin_memcpy(tuple.saddr, &head[8], 16);
		__builtin_memcpy(tuple.daddr, &head[24], 16);
	} else {
		return 1;
	}
	u8 tcp[14];
	if (ip_len < 20 || ip_len > 60 || bpf_skb_load_bytes(skb, ip_len, tcp, 14) < 0)
		return 1;
	u32 tcp_len = (tcp[12] >> 4) * 4;
	payload_off = ip_len + tcp_len;
	if (tcp_len < 20 || skb->len < payload_off + 6)
		return 1;
	u8 rec[6];
	if (bpf_skb_load_bytes(skb, payload_off, rec, 6) < 0)
		return 1;
	/* TLS record: handshake (22), version 3.x, then a ClientHello (1). */
	if (rec[0] != 22 || rec[1] != 3 || rec[5] != 1)
		return 1;
	tuple.sport = ((u16)tcp[0] << 8) | tcp[1];
	tuple.dport = ((u16)tcp[2] << 8) | tcp[3];
	struct lumen_sock_owner *owner = lumen_fresh.lookup(&tuple);
	if (!owner)
		return 1;
	struct lumen_sock_owner copy = *owner;
	lumen_fresh.delete(&tuple);
	lumen_count(LUMEN_SOCK_HELLOS);
	lumen_watch.update(&copy.sock, &copy);
	struct lumen_sock_event *ev = lumen_sockets.ringbuf_reserve(sizeof(*ev));
	if (!ev) {
		lumen_count(LUMEN_SOCK_RINGBUF_FULL);
		return 1;
	}
	/* Masked, then clamped: the verifier must see 1 <= len <= LUMEN_HELLO_BYTES. */
	u64 len = (u64)(skb->len - payload_off) & 0xffff;
	if (len > LUMEN_HELLO_BYTES)
		len = LUMEN_HELLO_BYTES;
	ev->data_len = 0;
	if (len >= 1 && bpf_skb_load_bytes(skb, payload_off, ev->data, len) == 0)
		ev->data_len = len;
	ev->ts_ns = bpf_ktime_get_ns();
	ev->sock = copy.sock;
	ev->cgroup_id = copy.cgroup_id;
	ev->bytes_sent = 0;
	ev->bytes_received = 0;
	__builtin_memcpy(&ev->tuple, &tuple, sizeof(tuple));
	ev->pid = copy.pid;
	ev->uid = copy.uid;
	ev->kind = LUMEN_SOCK_HELLO;
	__builtin_memcpy(ev->comm, copy.comm, LUMEN_COMM_LEN);
	lumen_sockets.ringbuf_submit(ev, 0);
	return 1;
}
