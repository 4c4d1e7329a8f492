#!/usr/bin/env bash
# Whole-program measurements of contacts and calendar sync, reported in
# docs/performance.md:
#   1. 10,000 contacts and 5,000 events: first sync A -> B, then a no-change sync;
#   2. one edited phone number: the bytes it puts on the wire, both ways.
# Usage: bench/pim_bench.sh [BUILD_DIR]   (a release build: make build PRESET=release)
set -euo pipefail
build=${1:-build/release}
ferryd="$build/src/server/ferryd"
ferry="$build/src/cli/ferry"
command -v /usr/bin/time >/dev/null || {
  if [ "$(id -u)" = 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q time >/dev/null
}
work=$(mktemp -d /tmp/ferry-pim-bench-XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$ferryd" --data "$work/server" --listen 127.0.0.1:0 --log-level warn >"$work/ferryd.out" 2>&1 &
pids+=($!)
for _ in $(seq 100); do grep -q '^fingerprint' "$work/ferryd.out" && break; sleep 0.1; done
address=$(awk '/listening on/ {print $4}' "$work/ferryd.out")
printf 'bench passphrase\n' >"$work/pass"
"$ferry" --home "$work/a" account create --server "$address" --user bench \
  --passphrase-file "$work/pass" --device-name a >/dev/null
"$ferry" --home "$work/b" login --server "$address" --user bench \
  --passphrase-file "$work/pass" --device-name b >/dev/null

# timed LABEL CMD...: prints "LABEL  wall_s  peak_rss_MB" and the command's last line.
timed() {
  local label=$1; shift
  /usr/bin/time -f "%e %M" -o "$work/time" "$@" >"$work/out" 2>&1 || true
  read -r wall rss <"$work/time"
  printf '%-40s %8.2f s %8.1f MB   %s\n' "$label" "$wall" "$(echo "$rss / 1024" | bc -l)" \
    "$(tail -n 1 "$work/out")"
}

# Address books and calendars shaped like real ones: names, 1-3 phones, 1-2 e-mail
# addresses, an address, notes, categories; events with time zones, attendees, alarms,
# some recurring with an override.
python3 - "$work" <<'PY'
import os, random, sys
work = sys.argv[1]
random.seed(7)
os.makedirs(f"{work}/contacts-a"); os.makedirs(f"{work}/calendar-a")
first = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Niklaus"]
last = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Wirth"]
for i in range(10000):
    f, l = random.choice(first), random.choice(last)
    uid = f"contact-{i:05d}@bench.example"
    lines = ["BEGIN:VCARD", "VERSION:3.0", f"UID:{uid}", f"FN:{f} {l} {i}", f"N:{l};{f};;;",
             f"REV:2026{random.randint(1,12):02d}{random.randint(1,28):02d}T120000Z"]
    for k in range(random.randint(1, 3)):
        kind = random.choice(["cell", "work", "home"])
        lines.append(f"TEL;TYPE={kind}:+1 555 {random.randint(100,999)} {random.randint(1000,9999)}")
    for k in range(random.randint(1, 2)):
        lines.append(f"EMAIL;TYPE={random.choice(['home','work'])}:{f.lower()}.{l.lower()}{i}.{k}@example.org")
    lines.append(f"ADR;TYPE=home:;;{random.randint(1,999)} Main Street;Springfield;;{random.randint(10000,99999)};USA")
    lines.append(f"ORG:Example {random.randint(1,50)}")
    lines.append("NOTE:" + " ".join(random.choice(last) for _ in range(random.randint(3, 30))))
    lines.append("CATEGORIES:" + ",".join(random.sample(["friends", "work", "family", "vip"], 2)))
    lines.append("END:VCARD")
    with open(f"{work}/contacts-a/{uid}.vcf", "w", newline="") as out:
        out.write("\r\n".join(lines) + "\r\n")
tz = ["BEGIN:VTIMEZONE", "TZID:Europe/Berlin", "BEGIN:STANDARD", "DTSTART:19701025T030000",
      "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU", "TZOFFSETFROM:+0200", "TZOFFSETTO:+0100",
      "END:STANDARD", "BEGIN:DAYLIGHT", "DTSTART:19700329T020000",
      "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU", "TZOFFSETFROM:+0100", "TZOFFSETTO:+0200",
      "END:DAYLIGHT", "END:VTIMEZONE"]
for i in range(5000):
    uid = f"event-{i:05d}@bench.example"
    day = f"2026{random.randint(1,12):02d}{random.randint(1,28):02d}"
    ev = ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20261101T000000Z",
          f"DTSTART;TZID=Europe/Berlin:{day}T{random.randint(8,17):02d}0000",
          f"DTEND;TZID=Europe/Berlin:{day}T{random.randint(18,19):02d}0000",
          f"SUMMARY:Meeting {i} with {random.choice(last)}",
          f"LOCATION:Room {random.randint(1,40)}",
          "DESCRIPTION:" + " ".join(random.choice(first) for _ in range(random.randint(3, 20)))]
    for k in range(random.randint(0, 4)):
        ev.append(f"ATTENDEE;CN={random.choice(first)};PARTSTAT=ACCEPTED:mailto:p{k}.{i}@example.org")
    ev += ["BEGIN:VALARM", "ACTION:DISPLAY", "DESCRIPTION:Reminder", "TRIGGER:-PT15M", "END:VALARM"]
    recurring = i % 10 == 0
    if recurring:
        ev.insert(5, "RRULE:FREQ=WEEKLY;COUNT=10")
    ev.append("END:VEVENT")
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//ferry//bench//EN"] + tz + ev
    if recurring:
        lines += ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20261101T000000Z",
                  f"RECURRENCE-ID;TZID=Europe/Berlin:{day}T100000",
                  f"DTSTART;TZID=Europe/Berlin:{day}T110000", "SUMMARY:Moved", "END:VEVENT"]
    lines.append("END:VCALENDAR")
    with open(f"{work}/calendar-a/{uid}.ics", "w", newline="") as out:
        out.write("\r\n".join(lines) + "\r\n")
PY
echo "$(ls "$work/contacts-a" | wc -l) contacts ($(du -sh "$work/contacts-a" | cut -f1)), \
$(ls "$work/calendar-a" | wc -l) events ($(du -sh "$work/calendar-a" | cut -f1))"

for kind in contacts calendar; do
  "$ferry" --home "$work/a" add "$kind" --kind "$kind" --path "$work/$kind-a" >/dev/null
  "$ferry" --home "$work/b" add "$kind" --kind "$kind" --path "$work/$kind-b" >/dev/null
done
sync

echo "== 1. first sync and no-change sync"
for kind in contacts calendar; do
  timed "$kind: A pushes (first sync)" "$ferry" --home "$work/a" sync "$kind"
  timed "$kind: B pulls (first sync)" "$ferry" --home "$work/b" sync "$kind"
  timed "$kind: no-change sync on A" "$ferry" --home "$work/a" sync "$kind"
  timed "$kind: no-change sync on A (again)" "$ferry" --home "$work/a" sync "$kind"
  timed "$kind: no-change sync on B" "$ferry" --home "$work/b" sync "$kind"
done
[ "$(ls "$work/contacts-b" | wc -l)" = 10000 ] && [ "$(ls "$work/calendar-b" | wc -l)" = 5000 ] &&
  echo "B holds every contact and event"

echo "== 2. one edited phone number"
file="$work/contacts-a/contact-04242@bench.example.vcf"
sed -i '0,/^TEL/s/^\(TEL[^:]*:\).*\r$/\1+1 555 000 0000\r/' "$file"
timed "push of the edit" "$ferry" --home "$work/a" sync contacts
timed "pull of the edit" "$ferry" --home "$work/b" sync contacts
grep -q '+1 555 000 0000' "$work/contacts-b/contact-04242@bench.example.vcf" &&
  echo "B has the new number"
