// SPDX-License-Identifier: Apache-2.0
/* guard.bpf.c: refuse connect() from blocked callers to LLM API endpoints.
 *
 * Strategy:
 *  - Two BPF_PROG_TYPE_CGROUP_SOCK_ADDR programs (connect4, connect6), linked
 *    to the root of the cgroup v2 hierarchy, run in the context of every
 *    connect() on the host. Returning 0 makes connect() fail with EPERM.
 *  - The common case costs one hash lookup: a destination that is not a known
 *    LLM endpoint (guard_ep4/guard_ep6, filled by user space from the
 *    connections the capture saw carry LLM calls) is allowed at once.
 *  - Only then is the caller checked against three sets: blocked tgids,
 *    blocked cgroup ids (scopes that are a unit or container) and blocked
 *    process names (service scopes: a new process of that name is caught too).
 *  - IPv4-mapped IPv6 destinations (dual-stack sockets) are looked up as IPv4.
 *  - Every refusal is counted.
 * Keys mirror lumen_sniff/budgets/enforce.py (ctypes) and are checked by
 * tests/unit/test_guard_layout.py. Addresses and ports are in network order,
 * as struct bpf_sock_addr holds them.
 */
#include <uapi/linux/bpf.h>
#include <linux/socket.h>

struct guard_ep4 {
    __u32 addr;
    __u32 port;
};

struct guard_ep6 {
    __u32 addr[4];
    __u32 port;
};

struct guard_comm {
    char comm[16];
};

BPF_HASH(guard_ep4, struct guard_ep4, __u8, 4096);
BPF_HASH(guard_ep6, struct guard_ep6, __u8, 4096);
BPF_HASH(guard_tgids, __u32, __u8, 8192);
BPF_HASH(guard_cgroups, __u64, __u8, 1024);
BPF_HASH(guard_comms, struct guard_comm, __u8, 1024);
BPF_ARRAY(guard_refused, __u64, 1);

static __always_inline int guard_blocked_caller(void)
{
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    if (guard_tgids.lookup(&tgid))
        return 1;
    __u64 cg = bpf_get_current_cgroup_id();
    if (guard_cgroups.lookup(&cg))
        return 1;
    struct guard_comm comm = {};
    bpf_get_current_comm(&comm.comm, sizeof(comm.comm));
    return guard_comms.lookup(&comm) != 0;
}

static __always_inline int guard_refuse(void)
{
    __u32 zero = 0;
    __u64 *count = guard_refused.lookup(&zero);
    if (count)
        __sync_fetch_and_add(count, 1);
    return 0;
}

int guard_connect4(struct bpf_sock_addr *ctx)
{
    struct guard_ep4 key = {};
    key.addr = ctx->user_ip4;
    key.port = ctx->user_port;
    if (!guard_ep4.lookup(&key) || !guard_blocked_caller())
        return 1;
    return guard_refuse();
}

int guard_connect6(struct bpf_sock_addr *ctx)
{
    struct guard_ep6 key = {};
    key.addr[0] = ctx->user_ip6[0];
    key.addr[1] = ctx->user_ip6[1];
    key.addr[2] = ctx->user_ip6[2];
    key.addr[3] = ctx->user_ip6[3];
    key.port = ctx->user_port;
    if (key.addr[0] == 0 && key.addr[1] == 0 && key.addr[2] == bpf_htonl(0xffff)) {
        struct guard_ep4 k4 = {};
        k4.addr = key.addr[3];
        k4.port = key.port;
        if (!guard_ep4.lookup(&k4))
            return 1;
    } else if (!guard_ep6.lookup(&key)) {
        return 1;
    }
    if (!guard_blocked_caller())
        return 1;
    return guard_refuse();
}
