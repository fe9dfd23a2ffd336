# SPDX-License-Identifier: MIT
"""Checker for the numbered line pattern written by tests/fake-guest.c.

Each line is exactly `line_length` bytes including the final '\\n':

    b"<tag> <seq as 12 decimal digits> " + filler + b"\\n"

where the filler byte at column i (0-based, within the line) is
chr(ord('a') + (seq + i) % 26), seq being the printed number (the counter
modulo 10**12).

check_lines() scans a byte stream for line headers anywhere (the stream may
start or end in the middle of a line, and other text such as "[ttyhub] ..."
notices may sit between lines or even inside one).  A header followed by
exactly the expected line counts as a line; a header whose line does not match
counts as corrupt (for example, the broker cut it and inserted a notice).  A
header at the very end of the data whose available bytes match the expected
prefix is a truncated tail, not corruption.

Stdlib only.  Run this file without arguments for its self-test, or with files
to check them:  pattern.py [--tag T] [--line-length N] FILE...
"""

import json
import re
import sys

SEQ_DIGITS = 12
SEQ_MOD = 10 ** SEQ_DIGITS


def _filler(line_length):
    return bytes(ord('a') + j % 26 for j in range(line_length + 26))


def make_line(seq, tag='fg', line_length=64):
    """Return the line fake-guest writes for number `seq`."""
    tag_b = tag.encode() if isinstance(tag, str) else bytes(tag)
    seq %= SEQ_MOD
    hdr = tag_b + b' %012d ' % seq
    if line_length < len(hdr) + 1:
        raise ValueError('line_length too small for tag')
    off = (seq + len(hdr)) % 26
    return hdr + _filler(line_length)[off:off + line_length - 1 - len(hdr)] + b'\n'


def make_stream(first, count, tag='fg', line_length=64):
    """Return `count` consecutive lines starting at `first`."""
    return b''.join(make_line(s, tag, line_length) for s in range(first, first + count))


def check_lines(data: bytes, tag='fg', line_length=64) -> dict:
    """Parse a stream of pattern lines.

    Returns {"first": seq|None, "last": seq|None, "lines": n,
             "gaps": [(after_seq, missing_count), ...], "corrupt": n,
             "reorders": [(after_seq, seq), ...]}
    first/last are the first and last valid line numbers in stream order;
    gaps lists every forward jump; reorders lists every backward or repeated
    number (replayed or duplicated output).
    """
    tag_b = tag.encode() if isinstance(tag, str) else bytes(tag)
    data = bytes(data)
    hdr_len = len(tag_b) + SEQ_DIGITS + 2
    if line_length < hdr_len + 1:
        raise ValueError('line_length too small for tag')
    filler = _filler(line_length)
    fill_len = line_length - 1 - hdr_len
    header = re.compile(re.escape(tag_b) + b' ([0-9]{%d}) ' % SEQ_DIGITS)

    def expected_body(seq):
        off = (seq + hdr_len) % 26
        return filler[off:off + fill_len] + b'\n'

    seqs = []
    corrupt = 0
    pos = 0
    n = len(data)
    while True:
        m = header.search(data, pos)
        if not m:
            break
        seq = int(m.group(1))
        body_start = m.end()
        end = m.start() + line_length
        if end > n:
            # truncated tail: fine if what is there is right
            if data[body_start:] == expected_body(seq)[:n - body_start]:
                break
            corrupt += 1
            pos = body_start
            continue
        if data[body_start:end] == expected_body(seq):
            seqs.append(seq)
            pos = end
        else:
            corrupt += 1
            pos = body_start

    gaps = []
    reorders = []
    for prev, cur in zip(seqs, seqs[1:]):
        if cur == prev + 1:
            continue
        if cur > prev + 1:
            gaps.append((prev, cur - prev - 1))
        else:
            reorders.append((prev, cur))
    return {
        'first': seqs[0] if seqs else None,
        'last': seqs[-1] if seqs else None,
        'lines': len(seqs),
        'gaps': gaps,
        'corrupt': corrupt,
        'reorders': reorders,
    }


def _self_test():
    L = 64
    s = make_stream(0, 100)
    assert len(s) == 100 * L
    assert make_line(7) == (b'fg 000000000007 '
                            + bytes(ord('a') + (7 + i) % 26 for i in range(16, 63)) + b'\n')

    r = check_lines(s)
    assert r == {'first': 0, 'last': 99, 'lines': 100, 'gaps': [], 'corrupt': 0,
                 'reorders': []}, r

    # empty and garbage-only input
    r = check_lines(b'')
    assert r['first'] is None and r['lines'] == 0 and r['corrupt'] == 0, r
    r = check_lines(b'[ttyhub] hello\r\nlogin: ')
    assert r['lines'] == 0 and r['corrupt'] == 0, r

    # starts mid-line, ends mid-line
    r = check_lines(s[30:-10])
    assert (r['first'], r['last'], r['lines'], r['gaps'], r['corrupt']) == \
        (1, 98, 98, [], 0), r

    # a truncated tail that is wrong is corruption
    bad_tail = s[:-10] + b'X'
    r = check_lines(bad_tail)
    assert r['last'] == 98 and r['corrupt'] == 1, r

    # notices between lines do not disturb anything
    n = b'[ttyhub] alice attached (rw)\r\n'
    t = s[:10 * L] + n + s[10 * L:50 * L] + n + n + s[50 * L:]
    r = check_lines(t)
    assert r['lines'] == 100 and r['gaps'] == [] and r['corrupt'] == 0, r

    # bytes dropped mid-line with a marker: line 10 is cut, 11..15 lost
    cut = s[:10 * L + 20] + b'[ttyhub] 347 bytes dropped\r\n' + s[15 * L + 40:]
    r = check_lines(cut)
    assert r['gaps'] == [(9, 6)] and r['corrupt'] == 1 and r['lines'] == 100 - 6, r

    # silent loss of whole lines
    r = check_lines(s[:20 * L] + s[23 * L:])
    assert r['gaps'] == [(19, 3)] and r['corrupt'] == 0 and r['lines'] == 97, r

    # one flipped filler byte
    b = bytearray(s)
    b[50 * L + 30] = ord('Z')
    r = check_lines(bytes(b))
    assert r['gaps'] == [(49, 1)] and r['corrupt'] == 1 and r['lines'] == 99, r
    # one flipped digit turns line 50 into "line 5x" with a bad body
    b = bytearray(s)
    b[50 * L + 14] = ord('9')
    r = check_lines(bytes(b))
    assert r['gaps'] == [(49, 1)] and r['corrupt'] == 1, r

    # duplicates / replay
    r = check_lines(s[:10 * L] + s[5 * L:])
    assert r['reorders'] == [(9, 5)] and r['gaps'] == [] and r['lines'] == 105, r

    # other tags, lengths, and regex characters in the tag
    for tag, ll in (('g+1', 40), ('vm-a', 200), ('x', 16)):
        u = make_stream(999999999990, 20, tag, ll)   # wraps at 10^12
        r = check_lines(u, tag, ll)
        assert r['lines'] == 20 and r['corrupt'] == 0, (tag, r)
        assert r['first'] == 999999999990 and r['last'] == 9, r
        assert r['reorders'] == [(999999999999, 0)], r
        assert check_lines(u, 'fg', 64)['lines'] == 0

    # two guests interleaved line by line: each tag sees only its own lines
    a = make_stream(0, 10, 'a')
    bb = make_stream(100, 10, 'b')
    mix = b''.join(a[i * L:(i + 1) * L] + bb[i * L:(i + 1) * L] for i in range(10))
    ra, rb = check_lines(mix, 'a'), check_lines(mix, 'b')
    assert (ra['first'], ra['last'], ra['gaps']) == (0, 9, []), ra
    assert (rb['first'], rb['last'], rb['gaps']) == (100, 109, []), rb

    # bytearray / memoryview input
    assert check_lines(bytearray(s))['lines'] == 100
    assert check_lines(memoryview(s))['lines'] == 100

    for bad in ((b'', 'fg', 16),):
        try:
            check_lines(*bad)
        except ValueError:
            pass
        else:
            raise AssertionError('line_length 16 accepted for tag fg')
    print('pattern.py self-test: ok')


def _main(argv):
    import argparse
    ap = argparse.ArgumentParser(description='check fake-guest line streams')
    ap.add_argument('--tag', default='fg')
    ap.add_argument('--line-length', type=int, default=64)
    ap.add_argument('files', nargs='*')
    args = ap.parse_args(argv)
    if not args.files:
        _self_test()
        return 0
    ok = True
    for path in args.files:
        with open(path, 'rb') as f:
            r = check_lines(f.read(), args.tag, args.line_length)
        print(json.dumps(dict(r, file=path)))
        ok = ok and not r['gaps'] and not r['corrupt']
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(_main(sys.argv[1:]))
