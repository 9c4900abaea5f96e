#!/usr/bin/env python3
"""Differential check of a folder of BPF objects against the running kernel.

    tools/corpus-check.py DIR [--pcap FILE] [--cli "dotnet path/SharpBpf.Cli.dll"] [--json OUT]

For every DIR/*.o: `sharpbpf prog load` (the kernel loads what our loader produced), `bpftool prog loadall` when
bpftool is installed (libbpf's verdict on the same object), `sharpbpf verify --kernel --json` (our verifier's verdict
beside the kernel's), and for every program either side accepts `sharpbpf run --pcap` in the interpreter, jit and
kernel engines, comparing per-action counts, traps and the packets written with --out. Without --pcap a small
deterministic set of frames is generated. Needs root (bpf(2)); otherwise prints why and exits 0 (skipped).
It runs in a private mount namespace with its own bpffs on /sys/fs/bpf, so no pin outlives it.
Exit code: 0 when every check agrees, 1 when something disagrees, 2 on bad usage."""
import argparse, glob, json, os, random, shutil, struct, subprocess, sys, tempfile

def sh(args, timeout=600):
    try:
        p = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        return p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        return -1, '', 'timeout after %d s' % timeout

def last_line(text):
    lines = [l.strip() for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:240] if lines else ''

def frames():
    """Ethernet frames: IPv4/IPv6 TCP/UDP/ICMP, VLAN, ARP, truncations and random bytes (at least 14 bytes each)."""
    rnd = random.Random(7)
    mac = bytes.fromhex('020000000002020000000001')
    def eth(t, p, vlans=()):
        return mac + b''.join(struct.pack('!HH', 0x8100, v) for v in vlans) + struct.pack('!H', t) + p
    def ip4(proto, p, ihl=5, ttl=64):
        h = struct.pack('!BBHHHBBH4s4s', 0x40 | ihl, 0, 20 + len(p), 1, 0, ttl, proto, 0, bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]))
        return h + b'\0' * (ihl * 4 - 20 if ihl > 5 else 0) + p
    def ip6(nh, p):
        return struct.pack('!IHBB', 0x60000000, len(p), nh, 64) + bytes(15) + b'\1' + bytes(15) + b'\2' + p
    udp = struct.pack('!HHHH', 1234, 53, 12, 0) + b'data'
    tcp = struct.pack('!HHIIBBHHH', 1234, 80, 1, 0, 0x50, 2, 65535, 0, 0)
    icmp = struct.pack('!BBHHH', 8, 0, 0, 1, 1) + b'ping'
    out = [eth(0x0800, ip4(17, udp)), eth(0x0800, ip4(6, tcp)), eth(0x0800, ip4(1, icmp)), eth(0x86dd, ip6(17, udp)),
           eth(0x86dd, ip6(6, tcp)), eth(0x86dd, ip6(58, b'\x80\0\0\0\0\1\0\1')), eth(0x0800, ip4(17, udp), [5]),
           eth(0x0800, ip4(17, udp), [1, 2]), eth(0x0806, bytes(28)), eth(0x0800, ip4(6, tcp, ihl=6)),
           eth(0x0800, ip4(17, udp, ttl=1)), eth(0x0800, ip4(17, udp, ihl=0))]
    out += [out[1][:n] for n in range(14, len(out[1]), 4)]
    out += [bytes(rnd.randrange(256) for _ in range(rnd.randrange(14, 120))) for _ in range(20)]
    return out

def write_pcap(path, packets):
    with open(path, 'wb') as f:
        f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
        for i, p in enumerate(packets):
            f.write(struct.pack('<IIII', i, 0, len(p), len(p)) + p)

def read_pcap(path):
    if not os.path.exists(path):
        return None
    b, off, out = open(path, 'rb').read(), 24, []
    while off + 16 <= len(b):
        n = struct.unpack('<IIII', b[off:off + 16])[2]
        out.append(b[off + 16:off + 16 + n].hex())
        off += 16 + n
    return out

def clean_bpffs():
    for e in os.listdir('/sys/fs/bpf'):
        if e not in ('maps.debug', 'progs.debug'):
            p = os.path.join('/sys/fs/bpf', e)
            shutil.rmtree(p, ignore_errors=True) if os.path.isdir(p) else os.unlink(p)

def check(obj, cli, pcap, work):
    r = {'object': os.path.basename(obj), 'problems': []}
    clean_bpffs()
    if shutil.which('bpftool'):
        rc, _, err = sh(['bpftool', 'prog', 'loadall', obj, '/sys/fs/bpf/corpus_check'])
        r['libbpf'] = 'ok' if rc == 0 else 'refused: ' + last_line(err)
        clean_bpffs()
    rc, _, err = sh(cli + ['prog', 'load', obj, '--json'])
    r['sharpbpf_load'] = 'ok' if rc == 0 else 'refused: ' + last_line(err)
    if r.get('libbpf') == 'ok' and rc != 0:
        r['problems'].append('libbpf loads it, sharpbpf prog load does not: ' + r['sharpbpf_load'])
    clean_bpffs()
    rc, out, err = sh(cli + ['verify', obj, '--kernel', '--json'])
    try:
        verdicts = json.loads(out)
    except ValueError:
        r['problems'].append('verify gave no JSON: ' + last_line(err))
        verdicts = []
    r['programs'] = []
    for v in verdicts:
        kernel = (v.get('kernel') or {}).get('accepted')
        p = {'program': v['program'], 'ours': v['accepted'], 'kernel': kernel, 'processed': v.get('processedInstructions'),
             'ms': round((v.get('elapsedMicroseconds') or 0) / 1000, 1)}
        if v.get('disagreement'):
            where = v.get('error') or {}
            r['problems'].append(f"{v['program']}: verdicts differ (ours {v['accepted']}, kernel {kernel}) "
                                 f"{where.get('instruction', '')} {where.get('message', '') or (v.get('kernel') or {}).get('message', '')}".strip())
        if v['accepted'] or kernel:
            runs = {}
            for engine in ('interpreter', 'jit', 'kernel'):
                out_pcap = os.path.join(work, f"{r['object']}.{v['program']}.{engine}.pcap")
                tier = ['--jit-tier', JIT_TIER] if engine == 'jit' and JIT_TIER else []
                rc, out, err = sh(cli + ['run', obj, '--program', v['program'], '--pcap', pcap, '--engine', engine, '--json', '--out', out_pcap] + tier)
                clean_bpffs()
                if rc != 0:
                    runs[engine] = {'error': last_line(err)}
                    continue
                j = json.loads(out)
                runs[engine] = {'actions': j.get('actions'), 'traps': j.get('traps'), 'out': read_pcap(out_pcap)}
            p['runs'] = {e: {k: x for k, x in run.items() if k != 'out'} for e, run in runs.items()}
            ref = runs.get('kernel')
            for engine in ('interpreter', 'jit'):
                mine = runs.get(engine)
                if ref is None or mine is None or 'error' in ref or 'error' in mine:
                    if (ref or {}).get('error') != (mine or {}).get('error'):
                        r['problems'].append(f"{v['program']}: {engine} vs kernel: {(mine or {}).get('error')} / {(ref or {}).get('error')}")
                    continue
                for key in ('actions', 'traps', 'out'):
                    if mine.get(key) != ref.get(key):
                        r['problems'].append(f"{v['program']}: {engine} and kernel differ in {key}"
                                             + ('' if key == 'out' else f": {mine.get(key)} vs {ref.get(key)}"))
        r['programs'].append(p)
    return r

JIT_TIER = None

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('dir')
    ap.add_argument('--pcap')
    ap.add_argument('--cli', default=None, help='command that runs sharpbpf (default: dotnet src/SharpBpf.Cli/bin/Release/net10.0/SharpBpf.Cli.dll)')
    ap.add_argument('--json', help='write the full results here')
    ap.add_argument('--jit-tier', help='the JIT tier the jit runs use (tiered, baseline, quick, optimized; default: the CLI default)')
    a = ap.parse_args()
    global JIT_TIER
    JIT_TIER = a.jit_tier
    if os.geteuid() != 0:
        print('corpus-check: skipped: needs root for bpf(2)')
        return 0
    if os.environ.get('CORPUS_CHECK_NS') != '1':
        # Re-run in a private mount namespace with a fresh bpffs: pins made by loads vanish with it.
        env = dict(os.environ, CORPUS_CHECK_NS='1')
        cmd = 'mount -t bpf corpuscheck /sys/fs/bpf && exec "$0" "$@"'
        return subprocess.call(['unshare', '-m', '--propagation', 'private', 'sh', '-c', cmd, sys.executable, os.path.abspath(__file__)] + sys.argv[1:], env=env)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cli = a.cli.split() if a.cli else ['dotnet', os.path.join(repo, 'src/SharpBpf.Cli/bin/Release/net10.0/SharpBpf.Cli.dll')]
    objs = sorted(glob.glob(os.path.join(a.dir, '*.o')))
    if not objs:
        print(f'corpus-check: no .o files in {a.dir}')
        return 2
    with tempfile.TemporaryDirectory(prefix='corpus-check-') as work:
        pcap = a.pcap or os.path.join(work, 'frames.pcap')
        if not a.pcap:
            write_pcap(pcap, frames())
        results, bad = [], 0
        for obj in objs:
            r = check(obj, cli, pcap, work)
            results.append(r)
            bad += bool(r['problems'])
            status = 'ok' if not r['problems'] else 'DISAGREES'
            print(f"{r['object']}: {status} (libbpf {r.get('libbpf', 'n/a')}; sharpbpf {r['sharpbpf_load']})")
            for problem in r['problems']:
                print('    ' + problem)
        if a.json:
            with open(a.json, 'w') as f:
                json.dump(results, f, indent=1)
    print(f'corpus-check: {len(objs)} objects, {bad} with disagreements')
    return 1 if bad else 0

if __name__ == '__main__':
    sys.exit(main())
