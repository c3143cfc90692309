import net from 'node:net';

/** An address with its prefix, in the text form `ip` and `iptables-save` print. */
export interface Cidr {
  family: 4 | 6;
  address: string;
  prefix: number;
  /** `address/prefix`, canonical (IPv6 compressed lowercase, as RFC 5952 and `ip` print it). */
  text: string;
}

/** Parses `10.0.0.1`, `10.0.0.1/32`, `FD00:0::1/128`...; a bare address is a host (/32, /128). */
export function parseCidr(input: string): Cidr {
  const slash = input.indexOf('/');
  const addr = slash < 0 ? input : input.slice(0, slash);
  const family = net.isIPv4(addr) ? 4 : net.isIPv6(addr) ? 6 : null;
  if (family === null) throw new Error(`parsing CIDR ${JSON.stringify(input)}: not an IP address`);
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash >= 0) {
    const p = input.slice(slash + 1);
    if (!/^\d{1,3}$/.test(p) || Number(p) > max) {
      throw new Error(`parsing CIDR ${JSON.stringify(input)}: prefix must be 0..${max}`);
    }
    prefix = Number(p);
  }
  const address =
    family === 4 ? addr : new net.SocketAddress({ address: addr, family: 'ipv6' }).address;
  return { family, address, prefix, text: `${address}/${prefix}` };
}
