// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
//
// Cairn edge-agent traffic filter: a TC (TCX) program attached to one
// interface on ingress and egress. It counts packets and bytes per
// (direction, protocol, destination port) and evaluates up to 64 filter
// rules, dropping packets that match a Drop rule.
//
// Rule evaluation design: the rules live in a plain BPF_MAP_TYPE_ARRAY of
// 2 * MAX_RULES slots (two "rule sets" for atomic replacement, see below)
// and are evaluated with a bounded loop of at most MAX_RULES (64)
// iterations. A bounded loop was chosen over an LPM trie because rules
// match on several fields at once (direction, protocol, port, CIDR) and
// are ordered: an LPM trie only answers "longest prefix" for one address,
// which would still need a per-prefix rule list. 64 iterations of a few
// compares is cheap and well within verifier limits (bounded loops are
// supported since Linux 5.3; TCX needs 6.6 anyway).
//
// Atomic replacement: user space writes the new rules into the inactive
// set, terminated by a slot with enabled == 0, resets that set's hit
// counters, and then flips the single u32 in `active_set`. A packet reads
// the active set index once, so it always sees one complete rule set.
//
// Rule semantics: rules are evaluated in order. Every matching rule gets
// its hit counter incremented. A matching Count rule lets evaluation
// continue; the first matching Drop rule stops it and the packet is
// dropped (TC_ACT_SHOT). Packets that are not dropped return
// TC_ACT_UNSPEC (TCX "next"), so other TCX programs on the interface
// still run.

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define MAX_RULES 64
#define MAX_TRAFFIC_KEYS 4096

// Directions (also the bits of a rule's direction mask).
#define DIR_INGRESS 1
#define DIR_EGRESS 2

// Protocols. In a traffic key 0 means "other"; in a rule 0 means "any".
#define PROTO_OTHER 0
#define PROTO_TCP 1
#define PROTO_UDP 2
#define PROTO_ICMP 3

#define ACTION_DROP 0
#define ACTION_COUNT 1

struct traffic_key {
	__u8 direction;
	__u8 protocol;
	__u16 port; // destination port, host byte order; 0 for ICMP/other
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct rule {
	__u8 enabled;   // 0 terminates the rule set
	__u8 action;    // ACTION_*
	__u8 direction; // mask of DIR_*
	__u8 protocol;  // PROTO_*, 0 = any
	__u16 port;     // destination port, host byte order, 0 = any
	__u8 has_cidr;  // 1: match IPv4 remote address against addr/mask
	__u8 pad;
	__u32 addr; // network byte order, already masked
	__u32 mask; // network byte order
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, MAX_TRAFFIC_KEYS);
	__type(key, struct traffic_key);
	__type(value, struct counter);
} traffic SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * MAX_RULES);
	__type(key, __u32);
	__type(value, struct rule);
} rules SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * MAX_RULES);
	__type(key, __u32);
	__type(value, struct counter);
} rule_hits SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} active_set SEC(".maps");

struct pkt {
	__u8 direction;
	__u8 protocol;
	__u8 is_ipv4;
	__u16 port;
	__u32 remote; // IPv4 remote address, network byte order
	__u64 len;
};

static __always_inline void count_traffic(struct pkt *p)
{
	struct traffic_key key = {
		.direction = p->direction,
		.protocol = p->protocol,
		.port = p->port,
	};
	struct counter *c = bpf_map_lookup_elem(&traffic, &key);
	if (!c) {
		struct counter init = { .packets = 1, .bytes = p->len };
		if (bpf_map_update_elem(&traffic, &key, &init, BPF_NOEXIST) == 0)
			return;
		// Lost a race with another CPU, or the map is full. In the
		// latter case fall back to the (direction, protocol, port 0)
		// overflow key, which user space creates at attach time.
		c = bpf_map_lookup_elem(&traffic, &key);
		if (!c) {
			key.port = 0;
			c = bpf_map_lookup_elem(&traffic, &key);
			if (!c)
				return;
		}
	}
	// Per-CPU value and TC runs with preemption disabled: plain adds.
	c->packets += 1;
	c->bytes += p->len;
}

static __always_inline int parse(struct __sk_buff *skb, struct pkt *p)
{
	__u16 h_proto;
	__u32 l4off;
	__u8 l4proto;

	if (bpf_skb_load_bytes(skb, offsetof(struct ethhdr, h_proto), &h_proto, sizeof(h_proto)) < 0)
		return 0;

	if (h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
			return 0;
		if (ip.ihl < 5)
			return 0;
		p->is_ipv4 = 1;
		p->remote = p->direction == DIR_INGRESS ? ip.saddr : ip.daddr;
		l4proto = ip.protocol;
		l4off = ETH_HLEN + ip.ihl * 4;
		// Non-first fragments carry no L4 header: port stays 0.
		if (ip.frag_off & bpf_htons(0x1fff))
			l4off = 0;
	} else if (h_proto == bpf_htons(ETH_P_IPV6)) {
		// Fixed header only: extension headers count as "other".
		struct ipv6hdr ip6;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip6, sizeof(ip6)) < 0)
			return 0;
		l4proto = ip6.nexthdr;
		l4off = ETH_HLEN + sizeof(struct ipv6hdr);
	} else {
		return 0;
	}

	switch (l4proto) {
	case IPPROTO_TCP:
		p->protocol = PROTO_TCP;
		break;
	case IPPROTO_UDP:
		p->protocol = PROTO_UDP;
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		p->protocol = PROTO_ICMP;
		return 0;
	default:
		return 0;
	}

	if (l4off) {
		// TCP and UDP both start with source port, destination port.
		__u16 ports[2];
		if (bpf_skb_load_bytes(skb, l4off, ports, sizeof(ports)) == 0)
			p->port = bpf_ntohs(ports[1]);
	}
	return 0;
}

static __always_inline int rule_matches(const struct rule *r, const struct pkt *p)
{
	if (!(r->direction & p->direction))
		return 0;
	if (r->protocol && r->protocol != p->protocol)
		return 0;
	if (r->port && r->port != p->port)
		return 0;
	if (r->has_cidr && (!p->is_ipv4 || (p->remote & r->mask) != r->addr))
		return 0;
	return 1;
}

static __always_inline int handle(struct __sk_buff *skb, __u8 direction)
{
	struct pkt p = {
		.direction = direction,
		.len = skb->len,
	};
	__u32 zero = 0;

	parse(skb, &p);
	count_traffic(&p);

	__u32 *set = bpf_map_lookup_elem(&active_set, &zero);
	if (!set)
		return TC_ACT_UNSPEC;
	__u32 base = *set ? MAX_RULES : 0;

	for (__u32 i = 0; i < MAX_RULES; i++) {
		__u32 idx = base + i;
		struct rule *r = bpf_map_lookup_elem(&rules, &idx);
		if (!r || !r->enabled)
			break;
		if (!rule_matches(r, &p))
			continue;
		struct counter *hits = bpf_map_lookup_elem(&rule_hits, &idx);
		if (hits) {
			hits->packets += 1;
			hits->bytes += p.len;
		}
		if (r->action == ACTION_DROP)
			return TC_ACT_SHOT;
	}
	return TC_ACT_UNSPEC;
}

SEC("tc")
int filter_ingress(struct __sk_buff *skb)
{
	return handle(skb, DIR_INGRESS);
}

SEC("tc")
int filter_egress(struct __sk_buff *skb)
{
	return handle(skb, DIR_EGRESS);
}

char __license[] SEC("license") = "Dual BSD/GPL";
