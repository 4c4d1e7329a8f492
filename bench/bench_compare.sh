#!/usr/bin/env bash
# Side by side: ferry, rsync, Unison and Syncthing on the same data, on 127.0.0.1,
# interleaved, one table with ratios to rsync (docs/performance.md, issue 7).
#
# Scenarios, each run for every tool one after another (order rotated per scenario),
# every tool starting from the same state of its folder A:
#   1. initial sync A -> B (B empty); 2. no-change resync; 3. edits: 1% of the files
#   (appends, overwrites in the middle, inserts at the start; seeded) and 100 small
#   edits at scattered offsets in the big file; 4. rename of a directory holding
#   >= 100 files; 5. delete of 1% of the files.
# Per tool and scenario: wall time to convergence, bytes on the wire both ways, peak RSS
# of client and server/daemon, and whether B equals A afterwards (type, size, content
# hash, symlink target of every entry).
#
# Usage: bench/bench_compare.sh [BUILD_DIR]      (default build/release; make bench-compare)
# Environment:
#   QUICK=1        development run: /usr/include/linux and a 4 MB big file
#   DATA_DIRS=".." directories copied into A (default "/usr/include /usr/share/doc")
#   BIG_MB=40      size of the file of random bytes added to A
#   OUT=FILE       markdown copy of the table (default /tmp/bench_compare.md)
#   TIMEOUT=900    seconds one tool may take for one scenario before it is reported
#                  as "did not converge" (QUICK: 180)
#   SEED=7         seed of the edit and delete choices
#   TOOLS=".."     the tools to run (default "ferry ferrywatch rsync unison syncthing";
#                  the ratios need rsync; ferrywatch = ferry with device B running
#                  `ferry watch`, as Syncthing's B is always running)
#   WORK_BASE=/tmp where the work dir is made; KEEP_WORK=1 keeps it
set -euo pipefail
cmdline="$0 $*"
here=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$here/build/release}
ferryd="$build/src/server/ferryd"
ferry="$build/src/cli/ferry"
count_proxy="$build/bench/count_proxy"
for b in "$ferryd" "$ferry" "$count_proxy"; do
  [ -x "$b" ] || { echo "error: $b is missing: make build PRESET=release" >&2; exit 1; }
done
QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  DATA_DIRS=${DATA_DIRS:-/usr/include/linux}; BIG_MB=${BIG_MB:-4}; TIMEOUT=${TIMEOUT:-180}
else
  DATA_DIRS=${DATA_DIRS:-/usr/include /usr/share/doc}; BIG_MB=${BIG_MB:-40}; TIMEOUT=${TIMEOUT:-900}
fi
OUT=${OUT:-/tmp/bench_compare.md}
SEED=${SEED:-7}
TOOLS=${TOOLS:-ferry ferrywatch rsync unison syncthing}

# --- tools from Debian packages ------------------------------------------------------
missing=()
for pair in rsync:rsync unison:unison syncthing:syncthing /usr/bin/time:time python3:python3 \
            pgrep:procps; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -q >/dev/null
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

work=$(mktemp -d "${WORK_BASE:-/tmp}/ferry-compare-XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for _ in $(seq 50); do
    local alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  if [ "${KEEP_WORK:-0}" = 1 ]; then echo "work dir kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$work/logs"
log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() { echo "error: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
# start_bg NAME CMD...: starts CMD in the background, its output in logs/NAME.log;
# its pid in $last_pid (and in pids, for the trap).
start_bg() {
  local name=$1; shift
  "$@" >"$work/logs/$name.log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
}
wait_port() {  # PORT: bounded (10 s) wait until 127.0.0.1:PORT accepts
  for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  die "nothing listens on 127.0.0.1:$1 after 10 s"
}
# Peak RSS of a long-running process: VmHWM, reset to the current RSS at the start of
# each scenario (clear_refs 5), so each scenario reports its own peak.
# Waits (at most 25 s) until the kernel has stopped handing freed memory back to the
# host. On a VM with free page reporting (/sys/module/page_reporting), a process that
# allocates while a reporting pass runs pays for it: device B's pull right after A's
# push took 2.1-9.9 s (20 runs) with 0.65-4.6 s of system time in page-cache copies,
# and 1.8-1.9 s with 0.5 s once reporting had settled; a python writer of the same tree in B's place
# 6.1 s and 1.5 s (docs/performance.md). Every timed step starts settled, as after `sync`.
settle_memory() {
  local f=/sys/module/page_reporting/parameters/reported_kib prev cur
  [ -r "$f" ] || return 0
  prev=$(cat "$f")
  for _ in $(seq 50); do
    sleep 0.5
    cur=$(cat "$f")
    [ "$cur" = "$prev" ] && return 0
    prev=$cur
  done
}
hwm_reset() { echo 5 >"/proc/$1/clear_refs" 2>/dev/null || hwm_note="lifetime peak"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
hwm_note=""

# --- helpers in python3 --------------------------------------------------------------
cat >"$work/plan.py" <<'PY'
# plan.py SRC PLAN_DIR SEED: makes the edited files once (PLAN_DIR/edits, same relative
# paths) and the lists of what scenarios 3-5 do: edited.txt, rename.txt, delete.txt, info.
import os, random, stat, sys
src, plan, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
BIG = 'big.bin'
files, dirs, nbytes = [], [], 0
for dirpath, dirnames, filenames in os.walk(src):
    dirnames.sort()
    rel = os.path.relpath(dirpath, src)
    for name in dirnames:
        p = os.path.join(dirpath, name)
        if not os.path.islink(p):
            dirs.append(os.path.normpath(os.path.join(rel, name)))
    for name in sorted(filenames):
        st = os.lstat(os.path.join(dirpath, name))
        if stat.S_ISREG(st.st_mode):
            files.append((os.path.normpath(os.path.join(rel, name)), st))
            nbytes += st.st_size
regular = [f for f, st in files if f != BIG]
editable = [f for f, st in files if f != BIG and st.st_nlink == 1]
n_edit = max(1, round(len(regular) / 100))
chosen = sorted(rng.sample(editable, n_edit))
kinds = {'append': 0, 'overwrite in the middle': 0, 'insert at the start': 0}
edits = os.path.join(plan, 'edits')

def write_edit(rel, data, mode):
    out = os.path.join(edits, rel)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, 'wb') as f:
        f.write(data)
    os.chmod(out, stat.S_IMODE(mode))

edited_bytes = 0
for i, rel in enumerate(chosen):
    st = os.lstat(os.path.join(src, rel))
    with open(os.path.join(src, rel), 'rb') as f:
        data = f.read()
    text = ''.join(f'ferry bench edit {i}.{k} seed {seed}\n' for k in range(rng.randint(1, 6)))
    e = text.encode()
    kind = list(kinds)[i % 3]
    kinds[kind] += 1
    if kind == 'append':
        data = data + e
    elif kind == 'overwrite in the middle':
        pos = len(data) // 2
        data = data[:pos] + e + data[pos + len(e):]
    else:
        data = e + data
    edited_bytes += len(e)
    write_edit(rel, data, st.st_mode)
st = os.lstat(os.path.join(src, BIG))
with open(os.path.join(src, BIG), 'rb') as f:
    big = bytearray(f.read())
for off in sorted(rng.sample(range(len(big) - 64), 100)):
    n = rng.randint(8, 32)
    big[off:off + n] = rng.randbytes(n)
    edited_bytes += n
write_edit(BIG, bytes(big), st.st_mode)
with open(os.path.join(plan, 'edited.txt'), 'w') as f:
    f.write(''.join(r + '\n' for r in chosen + [BIG]))

# Rename: the directory with the most bytes among those holding 100 to 1,000 regular
# files (counted recursively) and at most a tenth of all bytes; the one with the most
# files under half of all when none qualifies. (Until 2026-11-27 it was the smallest
# directory with >= 100 files, 0.3 MiB here: a sync's fixed cost, TLS handshakes and
# round trips, was then most of what the scenario measured.)
count, size = {}, {}
for rel, st in files:
    parts = rel.split('/')[:-1]
    for k in range(1, len(parts) + 1):
        d = '/'.join(parts[:k])
        count[d] = count.get(d, 0) + 1
        size[d] = size.get(d, 0) + st.st_size
half = len(files) / 2
cands = sorted((size[d], d) for d in dirs
               if d in count and 100 <= count[d] <= min(1000, half) and size[d] <= nbytes / 10)
note = ''
if cands:
    rdir = cands[-1][1]
    n = count[rdir]
else:
    n, rdir = max((count[d], d) for d in dirs if d in count and count[d] <= half)
    note = ' (no directory here holds >= 100 files and at most half of all; the largest)'
rdst = rdir + '.renamed'
with open(os.path.join(plan, 'rename.txt'), 'w') as f:
    f.write(f'{rdir}\n{rdst}\n')

after = [rdst + r[len(rdir):] if r.startswith(rdir + '/') else r for r in regular]
n_del = max(1, round(len(regular) / 100))
deleted = sorted(rng.sample(sorted(after), n_del))
with open(os.path.join(plan, 'delete.txt'), 'w') as f:
    f.write(''.join(r + '\n' for r in deleted))

def mib(n):
    return f'{n / 1048576:.1f} MiB'
with open(os.path.join(plan, 'info'), 'w') as f:
    f.write(f'1\tinitial\tinitial sync A → B (B empty): {len(files)} files, {len(dirs)} '
            f'directories, {mib(nbytes)}, symlinks included\n')
    f.write('2\tno change\tno-change resync\n')
    f.write(f'3\tedits\tedits: {n_edit} files ({", ".join(f"{v} {k}" for k, v in kinds.items())}) '
            f'and 100 edits of 8-32 bytes at scattered offsets in {BIG} ({edited_bytes} bytes '
            f'written in all)\n')
    f.write(f'4\trename\trename of the directory {rdir} ({n} files, {mib(size[rdir])}){note}\n')
    f.write(f'5\tdelete\tdelete of {n_del} files (1%)\n')
    f.write(f'rename_bytes\t{size[rdir]}\n')
PY

cat >"$work/apply.py" <<'PY'
# apply.py PLAN_DIR SCENARIO DIR: brings DIR from the state before SCENARIO to the state
# after it, in place (edited files rewritten in place with the plan's mtime; the
# directory renamed; files deleted), so every tool sees the same kind of change.
import os, shutil, sys
plan, scen, d = sys.argv[1], sys.argv[2], sys.argv[3]
def lines(name):
    with open(os.path.join(plan, name)) as f:
        return [l.rstrip('\n') for l in f if l.strip()]
if scen == '3':
    for rel in lines('edited.txt'):
        srcp = os.path.join(plan, 'edits', rel)
        with open(srcp, 'rb') as f:
            data = f.read()
        with open(os.path.join(d, rel), 'r+b') as f:
            f.truncate(0)
            f.write(data)
        st = os.stat(srcp)
        os.utime(os.path.join(d, rel), ns=(st.st_atime_ns, st.st_mtime_ns))
elif scen == '4':
    a, b = lines('rename.txt')
    os.rename(os.path.join(d, a), os.path.join(d, b))
elif scen == '5':
    for rel in lines('delete.txt'):
        os.unlink(os.path.join(d, rel))
PY

cat >"$work/manifest.py" <<'PY'
# manifest.py A B [EXCLUDED_TOP_LEVEL_NAME...]: "yes" when every entry has the same type,
# size, content hash (BLAKE2b) or symlink target in both trees; else "no: ..." and exit 1.
import hashlib, os, stat, sys
def manifest(root, excl):
    m = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for name in dirnames + filenames:
            r = os.path.normpath(os.path.join(rel, name))
            if r in excl:
                continue
            p = os.path.join(dirpath, name)
            try:
                st = os.lstat(p)
            except OSError:  # vanished while we walked: the tool is still at work
                m[r] = ('vanished',)
                continue
            if stat.S_ISLNK(st.st_mode):
                m[r] = ('symlink', os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                m[r] = ('dir',)
            elif stat.S_ISREG(st.st_mode):
                h = hashlib.blake2b(digest_size=16)
                try:
                    with open(p, 'rb') as f:
                        while chunk := f.read(1 << 20):
                            h.update(chunk)
                except OSError:
                    m[r] = ('vanished',)
                    continue
                m[r] = ('file', st.st_size, h.hexdigest())
            else:
                m[r] = ('other', stat.S_IFMT(st.st_mode))
        dirnames[:] = [n for n in dirnames if os.path.normpath(os.path.join(rel, n)) not in excl]
    return m
a, b = manifest(sys.argv[1], set(sys.argv[3:])), manifest(sys.argv[2], set(sys.argv[3:]))
bad = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
if not bad:
    print('yes')
    sys.exit(0)
only_a = sum(1 for k in bad if k not in b)
only_b = sum(1 for k in bad if k not in a)
print(f'no: {len(bad)} differ ({only_a} only in A, {only_b} only in B), e.g. {bad[0]}')
sys.exit(1)
PY

cat >"$work/st_config.py" <<'PY'
# st_config.py id CONFIG | st_config.py set CONFIG GUI_PORT APIKEY LISTEN_PORT NAME
#   OTHER_ID OTHER_PORT FOLDER_PATH FOLDER_TYPE
import copy, sys, xml.etree.ElementTree as ET
cfg = sys.argv[2]
tree = ET.parse(cfg)
root = tree.getroot()
me = root.find('device')
if sys.argv[1] == 'id':
    print(me.get('id'))
    sys.exit(0)
gui_port, apikey, listen_port, name, other_id, other_port, path, ftype = sys.argv[3:11]
me.set('name', name)
gui = root.find('gui')
gui.set('tls', 'false')
gui.find('address').text = f'127.0.0.1:{gui_port}'
gui.find('apikey').text = apikey
opts = root.find('options')
for e in opts.findall('listenAddress'):
    opts.remove(e)
la = ET.SubElement(opts, 'listenAddress')
la.text = f'tcp://127.0.0.1:{listen_port}'
def setopt(k, v):
    e = opts.find(k)
    if e is None:
        e = ET.SubElement(opts, k)
    e.text = v
for k, v in [('globalAnnounceEnabled', 'false'), ('localAnnounceEnabled', 'false'),
             ('relaysEnabled', 'false'), ('natEnabled', 'false'), ('urAccepted', '-1'),
             ('autoUpgradeIntervalH', '0'), ('crashReportingEnabled', 'false'),
             ('startBrowser', 'false'),
             # Syncthing lowers its own CPU priority by default; the others run at
             # normal priority, so it does too here.
             ('setLowPriority', 'false')]:
    setopt(k, v)
defaults = root.find('defaults')
dev = copy.deepcopy(defaults.find('device'))
dev.set('id', other_id)
dev.set('name', 'other')
dev.find('address').text = f'tcp://127.0.0.1:{other_port}'
root.insert(list(root).index(me) + 1, dev)
folder = copy.deepcopy(defaults.find('folder'))
folder.set('id', 'bench')
folder.set('label', 'bench')
folder.set('path', path)
folder.set('type', ftype)
folder.set('rescanIntervalS', '0')
folder.set('fsWatcherEnabled', 'false')
for e in folder.findall('device'):
    folder.remove(e)
for i, d in enumerate([me.get('id'), other_id]):
    e = ET.Element('device', {'id': d, 'introducedBy': ''})
    ET.SubElement(e, 'encryptionPassword')
    folder.insert(1 + i, e)
root.insert(0, folder)
tree.write(cfg)
PY

cat >"$work/st_rest.py" <<'PY'
# st_rest.py ready A_PORT B_PORT APIKEY A_ID B_ID TIMEOUT
# st_rest.py run   A_PORT B_PORT APIKEY A_ID B_ID TIMEOUT
#   run: POST a rescan of folder "bench" on A, then poll (every 100 ms, at most TIMEOUT s)
#   until A sees B at 100% with nothing needed, B needs nothing and is idle, and B's
#   local counts equal A's. Prints "ok|timeout WALL_S UP_BYTES DOWN_BYTES", bytes from
#   A's connection to B (up = A -> B).
import json, sys, time, urllib.request
mode, pa, pb, key, ida, idb, timeout = sys.argv[1:8]
timeout = float(timeout)
def call(port, path, method='GET'):
    req = urllib.request.Request(f'http://127.0.0.1:{port}{path}', method=method,
                                 headers={'X-API-Key': key})
    with urllib.request.urlopen(req, timeout=60) as r:
        body = r.read()
    return json.loads(body) if body else None
def conn():
    c = call(pa, '/rest/system/connections')['connections'].get(idb, {})
    return c.get('connected', False), c.get('outBytesTotal', 0), c.get('inBytesTotal', 0)
if mode == 'ready':
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            sa = call(pa, '/rest/db/status?folder=bench')
            sb = call(pb, '/rest/db/status?folder=bench')
            if conn()[0] and sa['state'] == 'idle' and sb['state'] == 'idle':
                print('ok')
                sys.exit(0)
        except OSError:
            pass
        time.sleep(0.2)
    print('timeout')
    sys.exit(1)
_, up0, down0 = conn()
t0 = time.monotonic()
call(pa, '/rest/db/scan?folder=bench', 'POST')
deadline = t0 + timeout
state = 'timeout'
while time.monotonic() < deadline:
    comp = call(pa, f'/rest/db/completion?device={idb}&folder=bench')
    sa = call(pa, '/rest/db/status?folder=bench')
    sb = call(pb, '/rest/db/status?folder=bench')
    if (comp['completion'] == 100 and comp['needItems'] == 0 and comp['needDeletes'] == 0
            and sb['needTotalItems'] == 0 and sb['state'] == 'idle' and sa['state'] == 'idle'
            and all(sa[k] == sb[k] for k in ('localFiles', 'localDirectories',
                                             'localSymlinks', 'localBytes'))):
        state = 'ok'
        break
    time.sleep(0.1)
t1 = time.monotonic()
_, up1, down1 = conn()
print(f'{state} {t1 - t0:.2f} {up1 - up0} {down1 - down0}')
PY

cat >"$work/report.py" <<'PY'
# report.py RESULTS INFO HEADER OUT: one table, a block per scenario, ratios to rsync.
import sys
results, info, header, notes, out = sys.argv[1:6]
rows = [l.rstrip('\n').split('\t') for l in open(results) if l.strip()]
title, desc = {}, {}
for l in open(info):
    f = l.rstrip('\n').split('\t')
    if len(f) == 3:
        title[f[0]], desc[f[0]] = f[1], f[2]
def human(n):
    n = int(n)
    for unit, div in (('GiB', 1 << 30), ('MiB', 1 << 20), ('KiB', 1 << 10)):
        if n >= div:
            return f'{n / div:.1f} {unit}'
    return f'{n} B'
def mb(kb):
    kb = int(kb)
    return f'{kb / 1024:.0f} MiB' if kb else '—'
def ratio(a, b):
    return f'{a / b:.2f}×' if b else '—'
cols = ['tool', 'wall s', '× rsync', 'bytes up', 'bytes down', 'total bytes', '× rsync',
        'peak RSS client', 'peak RSS server', 'B==A']
table = []
for s in sorted({r[0] for r in rows}, key=int):
    table.append([f'**{s}. {title.get(s, "")}**'] + [''] * (len(cols) - 1))
    block = [r for r in rows if r[0] == s]
    ref = next((r for r in block if r[1] == 'rsync' and r[2] == 'ok'), None)
    for (_, tool, status, wall, up, down, rc, rs, beqa, note) in block:
        total = int(up) + int(down)
        ok = status == 'ok'
        w = f'{float(wall):.2f}' if ok else status
        if note:
            w += f' ({note})'
        table.append([tool, w,
                      ratio(float(wall), float(ref[3])) if ok and ref else '—',
                      human(up), human(down), human(total),
                      ratio(total, int(ref[4]) + int(ref[5])) if ok and ref else '—',
                      mb(rc), mb(rs), beqa])
widths = [max(len(c), *(len(r[i]) for r in table)) for i, c in enumerate(cols)]
def line(cells):
    return '| ' + ' | '.join(c.ljust(w) for c, w in zip(cells, widths)) + ' |'
text = [line(cols), '|' + '|'.join('-' * (w + 2) for w in widths) + '|'] + [line(r) for r in table]
scen = 'Scenarios (every tool starts each from the same state of its folder A):\n' + \
    ''.join(f'{k}. {desc[k]}\n' for k in sorted(desc, key=int))
body = scen + '\n' + '\n'.join(text) + '\n\n' + open(notes).read()
open(out, 'w').write(open(header).read() + '\n' + body)
print(body, end='')
PY

# --- machine, data ---------------------------------------------------------------------
fstype=$(df -T "$work" | awk 'NR == 2 {print $2}')
cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
ram=$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
{
  echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "- command: \`${QUICK:+QUICK=$QUICK }DATA_DIRS=\"$DATA_DIRS\" BIG_MB=$BIG_MB SEED=$SEED $cmdline\`"
  echo "- machine: $(nproc) cores, ${cpu:-unknown CPU}, $ram RAM, kernel $(uname -r), work dir on $fstype ($work)"
  echo "- tools: ferry release build of $(date -u -r "$ferry" '+%Y-%m-%d %H:%M UTC')" \
    "(tree at $(git -C "$here" rev-parse --short HEAD 2>/dev/null || echo '?'));" \
    "$(rsync --version | head -n 1 | awk '{print $1, $3}');" \
    "$(unison -version 2>&1 | head -n 1);" \
    "$(syncthing --version | awk '{print $1, $2}')"
} >"$work/header.md"
cat "$work/header.md"

log "copying data: $DATA_DIRS + a $BIG_MB MB file of random bytes"
src="$work/data/src"
mkdir -p "$src"
for d in $DATA_DIRS; do
  [ -d "$d" ] || die "DATA_DIRS: $d is not a directory"
  cp -a "$d" "$src/"
done
python3 -c "import random,sys; sys.stdout.buffer.write(random.Random($SEED).randbytes($BIG_MB << 20))" \
  >"$src/big.bin"
# An old mtime, like the files around it: a same-size edit a moment after the file was
# written would be invisible to tools that compare mtimes at a coarse grain (Unison).
touch -d '2 days ago' "$src/big.bin"
python3 "$work/plan.py" "$src" "$work/data" "$SEED"
cut -f3 "$work/data/info" | head -n 5 | sed 's/^/  /' >&2

# --- ferry: ferryd + devices A and B, through a counting proxy -------------------------
# start_proxy NAME TARGET_PORT: sets ${NAME}_proxy_pid and ${NAME}_proxy_port.
start_proxy() {
  local name=$1
  start_bg "proxy-$name" "$count_proxy" "$work/$name.proxyport" "$2" "$work/$name.proxystats"
  for _ in $(seq 100); do [ -s "$work/$name.proxyport" ] && break; sleep 0.1; done
  [ -s "$work/$name.proxyport" ] || die "the $name proxy did not start"
  printf -v "${name}_proxy_pid" '%s' "$last_pid"
  printf -v "${name}_proxy_port" '%s' "$(cat "$work/$name.proxyport")"
}
# proxy_read NAME [OPEN]: "up down" so far, once every connection through it but OPEN
# (default 0; the watching device keeps one) has closed (bounded: 10 s).
proxy_read() {
  local pid_var="${1}_proxy_pid" stats="$work/$1.proxystats" seq0 s up down active
  read -r seq0 _ <"$stats"
  for _ in $(seq 100); do
    kill -USR1 "${!pid_var}"
    sleep 0.1
    read -r s up down active <"$stats"
    if [ "$s" -gt "$seq0" ] && [ "$active" -le "${2:-0}" ]; then echo "$up $down"; return; fi
  done
  echo "$up $down"
}

log "starting ferryd"
F="$work/ferry"
mkdir -p "$F/A"
start_bg ferryd "$ferryd" --data "$F/server" --listen 127.0.0.1:0 --log-level warn
ferryd_pid=$last_pid
for _ in $(seq 100); do grep -q '^fingerprint' "$work/logs/ferryd.log" && break; sleep 0.1; done
ferryd_addr=$(awk '/listening on/ {print $4}' "$work/logs/ferryd.log")
case $ferryd_addr in 127.0.0.1:[0-9]*) ;; *) die "ferryd did not start: $(cat "$work/logs/ferryd.log")" ;; esac
start_proxy ferry "${ferryd_addr##*:}"
printf 'bench passphrase\n' >"$F/pass"
"$ferry" --home "$F/homeA" account create --server "127.0.0.1:$ferry_proxy_port" --user bench \
  --passphrase-file "$F/pass" --device-name a >"$work/logs/ferry-setup.log" 2>&1 \
  || die "ferry account create: $(cat "$work/logs/ferry-setup.log")"
"$ferry" --home "$F/homeB" login --server "127.0.0.1:$ferry_proxy_port" --user bench \
  --passphrase-file "$F/pass" --device-name b >>"$work/logs/ferry-setup.log" 2>&1 \
  || die "ferry login: $(cat "$work/logs/ferry-setup.log")"
"$ferry" --home "$F/homeA" add Bench --path "$F/A" >>"$work/logs/ferry-setup.log" 2>&1 \
  || die "ferry add (A): $(cat "$work/logs/ferry-setup.log")"
"$ferry" --home "$F/homeB" add Bench --path "$F/B" >>"$work/logs/ferry-setup.log" 2>&1 \
  || die "ferry add (B): $(cat "$work/logs/ferry-setup.log")"

# --- ferry with device B always online (`ferry watch`), as Syncthing's instance B is:
# another account on the same ferryd, through a proxy of its own --------------------------
FW="$work/ferrywatch"
mkdir -p "$FW/A" "$FW/B"
if [[ " $TOOLS " == *" ferrywatch "* ]]; then
  start_proxy ferryw "${ferryd_addr##*:}"
  "$ferry" --home "$FW/homeA" account create --server "127.0.0.1:$ferryw_proxy_port" \
    --user benchwatch --passphrase-file "$F/pass" --device-name a >>"$work/logs/ferry-setup.log" 2>&1 \
    || die "ferry account create (watch): $(cat "$work/logs/ferry-setup.log")"
  "$ferry" --home "$FW/homeB" login --server "127.0.0.1:$ferryw_proxy_port" --user benchwatch \
    --passphrase-file "$F/pass" --device-name b >>"$work/logs/ferry-setup.log" 2>&1 \
    || die "ferry login (watch): $(cat "$work/logs/ferry-setup.log")"
  for side in A B; do
    "$ferry" --home "$FW/home$side" add Bench --path "$FW/$side" >>"$work/logs/ferry-setup.log" 2>&1 \
      || die "ferry add (watch $side): $(cat "$work/logs/ferry-setup.log")"
  done
  # No periodic rescan: B changes nothing itself; ferryd's Watch stream wakes it.
  # No periodic rescan and no folder watch, as Syncthing's B runs here (its watcher
  # and rescans off): B's own writes would otherwise make it scan its folder again.
  start_bg ferry-watch "$ferry" --home "$FW/homeB" watch --interval 86400 --no-folder-watch
  ferry_watch_pid=$last_pid
  for _ in $(seq 100); do grep -q 'watching' "$work/logs/ferry-watch.log" && break; sleep 0.1; done
  grep -q 'watching' "$work/logs/ferry-watch.log" \
    || die "ferry watch did not start: $(cat "$work/logs/ferry-watch.log")"
fi

# --- rsync: a daemon on 127.0.0.1, started for each scenario under /usr/bin/time so that
# its peak RSS includes the per-connection child it forks --------------------------------
R="$work/rsync"
mkdir -p "$R/A" "$R/B"
rsync_port=$(free_port)
# Without a chroot, an rsync daemon rewrites absolute symlinks it receives (munged, or
# sanitized by rsync >= 3.4 even with munging off); chrooted into the module it stores
# them as sent. chroot needs root.
if [ "$(id -u)" = 0 ]; then rsync_chroot=yes; else rsync_chroot=no; fi
cat >"$R/rsyncd.conf" <<CONF
port = $rsync_port
address = 127.0.0.1
use chroot = $rsync_chroot
munge symlinks = no
numeric ids = yes
[dst]
path = $R/B
read only = no
uid = $(id -u)
gid = $(id -g)
CONF
rsync_daemon_start() {
  start_bg rsyncd /usr/bin/time -f %M -o "$R/dtime" rsync --daemon --no-detach --config="$R/rsyncd.conf"
  rsync_time_pid=$last_pid
  wait_port "$rsync_port"
  rsync_daemon_pid=$(pgrep -P "$rsync_time_pid" | head -n 1)
  [ -n "$rsync_daemon_pid" ] || die "rsync daemon did not start: $(cat "$work/logs/rsyncd.log")"
}
rsync_daemon_stop() {  # prints the daemon's peak RSS (KiB), its children included
  for _ in $(seq 100); do pgrep -P "$rsync_daemon_pid" >/dev/null || break; sleep 0.1; done
  kill "$rsync_daemon_pid" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$rsync_time_pid" 2>/dev/null || break; sleep 0.1; done
  wait "$rsync_time_pid" 2>/dev/null || true
  tail -n 1 "$R/dtime"
}

# --- Unison: a socket server on 127.0.0.1, through a counting proxy --------------------
U="$work/unison"
mkdir -p "$U/A" "$U/B" "$U/client" "$U/server"
unison_port=$(free_port)
log "starting the unison server"
start_bg unison-server env UNISON="$U/server" unison -socket "$unison_port" -listen 127.0.0.1
unison_pid=$last_pid
wait_port "$unison_port"
start_proxy unison "$unison_port"

# --- Syncthing: two instances on 127.0.0.1 ----------------------------------------------
S="$work/syncthing"
mkdir -p "$S/A" "$S/B"
for side in A B; do
  STNODEFAULTFOLDER=1 syncthing generate --home "$S/home$side" --no-default-folder \
    >"$work/logs/syncthing-generate-$side.log" 2>&1 \
    || die "syncthing generate: $(cat "$work/logs/syncthing-generate-$side.log")"
done
st_id_A=$(python3 "$work/st_config.py" id "$S/homeA/config.xml")
st_id_B=$(python3 "$work/st_config.py" id "$S/homeB/config.xml")
st_key=$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')
st_gui_A=$(free_port); st_gui_B=$(free_port); st_listen_A=$(free_port); st_listen_B=$(free_port)
python3 "$work/st_config.py" set "$S/homeA/config.xml" "$st_gui_A" "$st_key" "$st_listen_A" \
  bench-a "$st_id_B" "$st_listen_B" "$S/A" sendreceive
python3 "$work/st_config.py" set "$S/homeB/config.xml" "$st_gui_B" "$st_key" "$st_listen_B" \
  bench-b "$st_id_A" "$st_listen_A" "$S/B" sendreceive
log "starting two syncthing instances"
for side in A B; do
  start_bg "syncthing-$side" env STNODEFAULTFOLDER=1 STNOUPGRADE=1 STNORESTART=1 \
    syncthing serve --home "$S/home$side" --no-browser --no-restart --no-upgrade --logflags=0
  printf -v "st_pid_$side" '%s' "$last_pid"
done
# syncthing serve runs as a monitor process and a worker it starts: both count.
st_procs() {  # SIDE: the instance's pids, the monitor's children included
  local p=$1
  echo "$p"
  pgrep -P "$p" || true
}
st_rest() { python3 "$work/st_rest.py" "$1" "$st_gui_A" "$st_gui_B" "$st_key" "$st_id_A" "$st_id_B" "$2"; }
st_rest ready 120 >/dev/null \
  || die "syncthing instances did not connect in 120 s; logs: $work/logs/syncthing-*.log"
for p in $(st_procs "$st_pid_A") $(st_procs "$st_pid_B"); do
  [ "$p" = "$st_pid_A" ] || [ "$p" = "$st_pid_B" ] || pids+=("$p")
done

# --- one step of each tool ----------------------------------------------------------------
# Each sets: r_status (ok, or why not), r_wall, r_up, r_down, r_rss_c, r_rss_s (KiB), r_note.
timed_run() {  # OUTFILE TIMEOUT CMD...: runs CMD under /usr/bin/time; sets t_rc t_wall t_rss
  local out=$1 limit=$2; shift 2
  t_rc=0
  /usr/bin/time -f "%e %M" -o "$out.time" timeout "$limit" "$@" >"$out" 2>&1 || t_rc=$?
  read -r t_wall t_rss < <(tail -n 1 "$out.time")
}
not_converged() { echo "did not converge in $TIMEOUT s"; }

step_ferry() {
  hwm_reset "$ferryd_pid"
  local t0 rssA rest up0 down0
  read -r up0 down0 < <(proxy_read ferry)
  t0=$(now)
  timed_run "$F/outA" "$TIMEOUT" "$ferry" --home "$F/homeA" sync Bench
  local rcA=$t_rc wallA=$t_wall; rssA=$t_rss
  rest=$(awk -v a="$t0" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN { r = t - (b - a); print (r < 1 ? 1 : int(r)) }')
  # A and B stand for two machines: B starts once A's freed memory has settled, and the
  # wall is A's process plus B's (the wait between them is not counted).
  settle_memory
  timed_run "$F/outB" "$rest" "$ferry" --home "$F/homeB" sync Bench
  local rcB=$t_rc
  r_wall=$(awk -v a="$wallA" -v b="$t_wall" 'BEGIN { printf "%.2f", a + b }')
  read -r r_up r_down < <(proxy_read ferry)
  r_up=$((r_up - up0)); r_down=$((r_down - down0))
  r_rss_c=$(( rssA > t_rss ? rssA : t_rss )); r_rss_s=$(hwm_kb "$ferryd_pid")
  r_note=""
  if [ "$rcA" = 124 ] || [ "$rcB" = 124 ]; then r_status=$(not_converged)
  elif [ "$rcA" != 0 ] || [ "$rcB" != 0 ]; then
    r_status="failed"
    r_note="ferry sync exit A $rcA, B $rcB: $(tail -n 1 "$F/outA") / $(tail -n 1 "$F/outB")"
  else r_status=ok; fi
  log "  ferry A (${wallA} s): $(tail -n 1 "$F/outA")"
  log "  ferry B (${t_wall} s): $(tail -n 1 "$F/outB")"
}

# B is `ferry watch`: converged once B's log reports a sync at A's seq or later (B
# prints a line for every sync that moved something; polled every 10 ms).
step_ferrywatch() {
  hwm_reset "$ferryd_pid"; hwm_reset "$ferry_watch_pid"
  local t0 t1 up0 down0 seq bseq
  read -r up0 down0 < <(proxy_read ferryw 1)
  t0=$(now)
  timed_run "$FW/outA" "$TIMEOUT" "$ferry" --home "$FW/homeA" sync Bench
  local rcA=$t_rc rssA=$t_rss
  seq=$(sed -n 's/.* at seq \([0-9]*\)$/\1/p' "$FW/outA" | tail -n 1)
  r_status=ok; r_note=""
  if [ "$rcA" = 124 ]; then r_status=$(not_converged)
  elif [ "$rcA" != 0 ]; then r_status=failed; r_note="ferry sync exit A $rcA: $(tail -n 1 "$FW/outA")"
  else
    while :; do
      bseq=$(sed -n 's/^Bench: .* at seq \([0-9]*\)$/\1/p' "$work/logs/ferry-watch.log" | tail -n 1)
      [ "${bseq:-0}" -ge "${seq:-0}" ] && break
      if ! kill -0 "$ferry_watch_pid" 2>/dev/null; then
        r_status=failed; r_note="ferry watch exited: $(tail -n 1 "$work/logs/ferry-watch.log")"; break
      fi
      if awk -v a="$t0" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
        r_status=$(not_converged); break
      fi
      sleep 0.01
    done
  fi
  t1=$(now)
  r_wall=$(elapsed "$t0" "$t1")
  read -r r_up r_down < <(proxy_read ferryw 1)
  r_up=$((r_up - up0)); r_down=$((r_down - down0))
  local rssB; rssB=$(hwm_kb "$ferry_watch_pid")
  r_rss_c=$(( rssA > rssB ? rssA : rssB )); r_rss_s=$(hwm_kb "$ferryd_pid")
  log "  ferry A: $(tail -n 1 "$FW/outA")"
  log "  ferry watch B: $(grep '^Bench: ' "$work/logs/ferry-watch.log" | tail -n 1)"
}

# step_rsync [durable]: rsync -a --delete into the daemon; "durable": B emptied first,
# then rsync followed by sync (scenario 1's second timing).
step_rsync() {
  local cmd=(rsync -a --delete --stats "$R/A/" "rsync://127.0.0.1:$rsync_port/dst/")
  if [ "${1:-}" = durable ]; then
    find "$R/B" -mindepth 1 -delete
    sync
    settle_memory
    cmd=(sh -c '"$@" && sync' sh "${cmd[@]}")
  fi
  rsync_daemon_start
  timed_run "$R/out" "$TIMEOUT" "${cmd[@]}"
  r_wall=$t_wall; r_rss_c=$t_rss
  r_rss_s=$(rsync_daemon_stop)
  r_up=$(awk -F': ' '/^Total bytes sent/ {gsub(/,/, "", $2); print $2}' "$R/out")
  r_down=$(awk -F': ' '/^Total bytes received/ {gsub(/,/, "", $2); print $2}' "$R/out")
  r_up=${r_up:-0}; r_down=${r_down:-0}; r_note=""
  if [ "$t_rc" = 124 ]; then r_status=$(not_converged)
  elif [ "$t_rc" != 0 ]; then r_status=failed; r_note="rsync exit $t_rc: $(tail -n 1 "$R/out")"
  else r_status=ok; fi
}

step_unison() {
  hwm_reset "$unison_pid"
  local up0 down0
  read -r up0 down0 < <(proxy_read unison)
  timed_run "$U/out" "$TIMEOUT" env UNISON="$U/client" unison "$U/A" \
    "socket://127.0.0.1:$unison_proxy_port/$U/B" -batch -auto -times -perms 0 -ui text
  r_wall=$t_wall; r_rss_c=$t_rss
  read -r r_up r_down < <(proxy_read unison)
  r_up=$((r_up - up0)); r_down=$((r_down - down0))
  r_rss_s=$(hwm_kb "$unison_pid"); r_note=""
  if [ "$t_rc" = 124 ]; then r_status=$(not_converged)
  elif [ "$t_rc" != 0 ]; then r_status=failed; r_note="unison exit $t_rc: $(tail -n 1 "$U/out")"
  else r_status=ok; fi
}

step_syncthing() {
  local p
  for p in $(st_procs "$st_pid_A") $(st_procs "$st_pid_B"); do hwm_reset "$p"; done
  local state
  read -r state r_wall r_up r_down < <(st_rest run "$TIMEOUT" 2>"$S/err" || echo "failed 0 0 0")
  r_rss_c=0; r_rss_s=0; r_note=""
  for p in $(st_procs "$st_pid_A"); do r_rss_c=$((r_rss_c + $(hwm_kb "$p"))); done
  for p in $(st_procs "$st_pid_B"); do r_rss_s=$((r_rss_s + $(hwm_kb "$p"))); done
  case $state in
    ok) r_status=ok ;;
    timeout) r_status=$(not_converged) ;;
    *) r_status=failed; r_note="REST: $(tail -n 1 "$S/err")" ;;
  esac
}

dir_A() { case $1 in ferry) echo "$F/A" ;; ferrywatch) echo "$FW/A" ;; rsync*) echo "$R/A" ;; unison) echo "$U/A" ;; syncthing) echo "$S/A" ;; esac; }
dir_B() { case $1 in ferry) echo "$F/B" ;; ferrywatch) echo "$FW/B" ;; rsync*) echo "$R/B" ;; unison) echo "$U/B" ;; syncthing) echo "$S/B" ;; esac; }

# run_tool SCENARIO TOOL [durable]: one timed step, then the B==A check; one result row.
run_tool() {
  local s=$1 tool=$2 label=$2 beqa excl=()
  [ "${3:-}" = durable ] && label="rsync + sync"
  [ "$tool" = syncthing ] && excl=(.stfolder)
  sync
  settle_memory
  log "scenario $s: $label"
  "step_$tool" ${3:+"$3"}
  beqa=$(python3 "$work/manifest.py" "$(dir_A "$tool")" "$(dir_B "$tool")" ${excl[@]+"${excl[@]}"} \
    2>"$work/logs/manifest.err" || true)
  [ -n "$beqa" ] || beqa="check failed: $(tail -n 1 "$work/logs/manifest.err")"
  if [ -n "$hwm_note" ] && [ "$tool" != rsync ]; then r_note="${r_note:+$r_note; }server RSS: $hwm_note"; fi
  log "  -> $r_status, ${r_wall} s, up $r_up, down $r_down, rss ${r_rss_c}/${r_rss_s} KiB, B==A $beqa${r_note:+ ($r_note)}"
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$s" "$label" "$r_status" "${r_wall:-0}" \
    "${r_up:-0}" "${r_down:-0}" "${r_rss_c:-0}" "${r_rss_s:-0}" "$beqa" "${r_note//$'\t'/ }" \
    >>"$work/results.tsv"
}

# --- the scenarios, interleaved ------------------------------------------------------------
tools=(ferry ferrywatch rsync unison syncthing)
: >"$work/results.tsv"
for s in 1 2 3 4 5; do
  for i in 0 1 2 3 4; do
    tool=${tools[$(( (i + s - 1) % 5 ))]}
    [[ " $TOOLS " == *" $tool "* ]] || continue
    A=$(dir_A "$tool")
    if [ "$s" = 1 ]; then cp -a "$src/." "$A/"; else python3 "$work/apply.py" "$work/data" "$s" "$A"; fi
    run_tool "$s" "$tool"
    if [ "$s" = 1 ] && [ "$tool" = rsync ]; then run_tool 1 rsync durable; fi
  done
done

rename_bytes=$(awk -F'\t' '$1 == "rename_bytes" {print $2}' "$work/data/info")
cat >"$work/notes.md" <<EOF
Notes:
- **wall s**: from the start of the first command to convergence (B equals A). ferry: device A's
  \`ferry sync\` plus device B's \`ferry sync\`, both whole processes (start, TLS, scan, transfer,
  fsync). ferrywatch: device B runs \`ferry watch\` throughout (started once, like Syncthing's
  instances; no periodic rescan); from the start of A's \`ferry sync\` until B's output reports
  a sync at A's seq (B pulls each transaction as ferryd's Watch stream announces it, while A
  is still pushing; a sync with nothing new converges when A's ends). rsync: the \`rsync -a --delete --stats\` client into an rsync daemon. Unison: the
  \`unison -batch\` client against a \`unison -socket\` server. Syncthing: from \`POST /rest/db/scan\`
  on A (file-system watcher off, periodic rescans off) until A sees B at 100 % with nothing
  needed, B needs nothing and is idle, and B's local counts equal A's (polled every 100 ms).
- **Durability**: ferry makes data durable before it reports (the server fsyncs before it
  acknowledges, the receiver before it renames a file into place); rsync and Unison do not
  flush, Syncthing fsyncs files it writes. **rsync + sync** is rsync into an emptied B followed
  by \`sync\`, the comparable number for scenario 1. Every timed step starts after a \`sync\`
  and, on a VM that reports free memory to its host (/sys/module/page_reporting), once the
  reporting has settled (the ferry pair also between A and B: two machines in reality).
- **bytes** (TCP payload, TLS included where the tool uses it): ferry and Unison: counted by a
  TCP proxy on 127.0.0.1 in front of ferryd and of the Unison server (bench/count_proxy,
  which moves the bytes with splice(2) and so costs little CPU), up = client to server,
  down = server to client; for ferry both devices' connections added up (A uploads to ferryd,
  B downloads from it: by design the data crosses the wire twice, A → ferryd → B).
  rsync: \`--stats\` total bytes sent (up) and received (down). Syncthing: A's connection
  counters for B (\`/rest/system/connections\`, up = A to B). The renamed directory holds
  $rename_bytes bytes.
- **peak RSS**: client = ferry: the larger of A's and B's \`ferry sync\` (ferrywatch: of A's
  \`ferry sync\` and B's \`ferry watch\`, VmHWM reset per scenario); rsync and Unison: the
  client; Syncthing: instance A (its monitor and worker processes added up). server = ferryd;
  the rsync daemon with the per-connection child it forks (/usr/bin/time on the daemon, which
  is restarted for each scenario so the child's peak is counted); the Unison server; Syncthing
  instance B. Long-running processes: VmHWM, reset (clear_refs) at the start of each scenario.
- **B==A**: every entry's type, size, content hash and symlink target compared (\`.stfolder\`
  excluded for Syncthing); modes and times are not compared (Unison runs with \`-perms 0\`).
- Syncthing: two instances started once and kept across scenarios, no discovery, relays,
  NAT, usage reporting or upgrades; \`setLowPriority\` off so it runs at the same priority
  as the others; otherwise its defaults. Unison: \`-batch -auto -times -perms 0\`, its archive
  kept across the scenarios of a run. rsync: \`rsync -a --delete --stats\` into a daemon module
  (use chroot = $rsync_chroot$([ "$rsync_chroot" = yes ] || echo ': not root, so the daemon rewrites absolute symlinks'); numeric ids).
EOF
echo
python3 "$work/report.py" "$work/results.tsv" "$work/data/info" "$work/header.md" "$work/notes.md" "$OUT"
echo
echo "markdown: $OUT"
