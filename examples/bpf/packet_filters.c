/* Packet filters (kind packetFilter): r1 = the frame, r2 = its length (at most 9216).
 * Each returns the number of bytes to accept, 0 to reject. They check the length before
 * every read, as the verifier demands; what they cannot prove it checks at run time. */
#include "xok_bpf.h"

enum { ETH = 14, ETH_IPV4 = 0x0800, ETH_ARP = 0x0806, ETH_VLAN = 0x8100, ETH_IPV6 = 0x86dd };
enum { IP_TCP = 6, IP_UDP = 17 };

/* Every IPv4 frame. The length is a 32-bit number, as clang compares it (w2). */
PROGRAM("filter/ipv4")
u64 ipv4(const u8 *frame, u32 length) {
    if (length < ETH) return 0;
    return be16(frame + 12) == ETH_IPV4 ? length : 0;
}

/* ARP requests asking for 192.0.2.7 (the target protocol address at byte 38). */
PROGRAM("filter/arp_who_has")
u64 arp_who_has(const u8 *frame, u64 length) {
    if (length < ETH + 28) return 0;
    if (be16(frame + 12) != ETH_ARP) return 0;
    if (be16(frame + 20) != 1) return 0; /* operation: request */
    return be32(frame + 38) == 0xc0000207 ? length : 0;
}

/* UDP to port 53 over IPv4 with any header length (IHL from 5 to 15 words). */
PROGRAM("filter/dns")
u64 dns(const u8 *frame, u32 length) {
    if (length < ETH + 20) return 0;
    if (be16(frame + 12) != ETH_IPV4 || frame[ETH + 9] != IP_UDP) return 0;
    u32 ihl = (frame[ETH] & 0x0f) * 4;
    if (ihl < 20 || length < ETH + ihl + 8) return 0;
    return be16(frame + ETH + ihl + 2) == 53 ? length : 0;
}

/* TCP SYN (not ACK) to port 80 over IPv4. */
PROGRAM("filter/http_syn")
u64 http_syn(const u8 *frame, u64 length) {
    if (length < ETH + 20) return 0;
    if (be16(frame + 12) != ETH_IPV4 || frame[ETH + 9] != IP_TCP) return 0;
    u64 ihl = (frame[ETH] & 0x0f) * 4;
    if (ihl < 20 || length < ETH + ihl + 20) return 0;
    const u8 *tcp = frame + ETH + ihl;
    u8 flags = tcp[13];
    return be16(tcp + 2) == 80 && (flags & 0x12) == 0x02 ? length : 0;
}

/* UDP to port 5353 (mDNS) over IPv6 without extension headers. */
PROGRAM("filter/ipv6_mdns")
u64 ipv6_mdns(const u8 *frame, u32 length) {
    if (length < ETH + 40 + 8) return 0;
    if (be16(frame + 12) != ETH_IPV6 || frame[ETH + 6] != IP_UDP) return 0;
    return be16(frame + ETH + 40 + 2) == 5353 ? length : 0;
}

/* TCP to port 443 over IPv6; accepts only the headers (74 bytes: a snap length). */
PROGRAM("filter/ipv6_https_headers")
u64 ipv6_https_headers(const u8 *frame, u64 length) {
    if (length < ETH + 40 + 20) return 0;
    if (be16(frame + 12) != ETH_IPV6 || frame[ETH + 6] != IP_TCP) return 0;
    return be16(frame + ETH + 40 + 2) == 443 ? ETH + 40 + 20 : 0;
}

/* IPv4 inside one 802.1Q tag on VLAN 42. */
PROGRAM("filter/vlan42_ipv4")
u64 vlan42_ipv4(const u8 *frame, u32 length) {
    if (length < 18 + 20) return 0;
    if (be16(frame + 12) != ETH_VLAN || (be16(frame + 14) & 0x0fff) != 42) return 0;
    return be16(frame + 16) == ETH_IPV4 ? length : 0;
}

/* IPv4 that is not a fragment (more-fragments clear, offset zero), from 192.0.2.0/24. */
PROGRAM("filter/whole_from_testnet")
u64 whole_from_testnet(const u8 *frame, u64 length) {
    if (length < ETH + 20) return 0;
    if (be16(frame + 12) != ETH_IPV4) return 0;
    if (be16(frame + ETH + 6) & 0x3fff) return 0;
    return (be32(frame + ETH + 12) & 0xffffff00) == 0xc0000200 ? length : 0;
}

/* UDP whose payload starts with "XOK!" and whose payload bytes sum to a multiple of 256:
 * a loop over data-dependent offsets, each read checked at run time. */
PROGRAM("filter/udp_magic_sum")
u64 udp_magic_sum(const u8 *frame, u32 length) {
    if (length < ETH + 20 + 8 + 4) return 0;
    if (be16(frame + 12) != ETH_IPV4 || frame[ETH + 9] != IP_UDP || (frame[ETH] & 0x0f) != 5) return 0;
    const u8 *payload = frame + ETH + 20 + 8;
    if (be32(payload) != 0x584f4b21) return 0;
    u32 sum = 0;
    for (u32 i = ETH + 20 + 8; i < length && i < 1500; i++) sum += frame[i];
    return (sum & 0xff) == 0 ? length : 0;
}
