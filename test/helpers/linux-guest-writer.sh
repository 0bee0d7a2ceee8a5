#!/bin/sh
# vi-writer DEV FIRST COUNT BS DIR: writes blocks FIRST..FIRST+COUNT-1 of DEV in turn,
# one block per write, until DIR/stop exists. Write number I goes to block
# FIRST + I % COUNT and holds the line "VIW blk=BLOCK gen=I" padded with zeros to BS
# bytes. Each write is O_DIRECT and fsync'd (dd), so an I/O error reaches dd's exit
# status here instead of hiding in the page cache.
#   DIR/errors    one line per failed write: gen, block, dd's status and message
#   DIR/stalls    one line per write slower than 1 s: gen, block, milliseconds
#   DIR/progress  "WRITES MAX_MS" after each write
#   DIR/result    "WRITES MAX_MS ELAPSED_MS" once stopped
dev=$1 first=$2 count=$3 bs=$4 dir=$5
mkdir -p "$dir"
: > "$dir/errors"
: > "$dir/stalls"

ms() {   # milliseconds since boot, from /proc/uptime (centiseconds), into $now
  read -r up _ < /proc/uptime
  frac=${up#*.}
  frac=${frac#0}
  now=$(( (${up%.*} * 100 + frac) * 10 ))
}

i=0
max=0
ms; start=$now
while [ ! -e "$dir/stop" ]; do
  b=$((first + i % count))
  printf 'VIW blk=%d gen=%d\n' "$b" "$i" > "$dir/blk"
  ms; t0=$now
  dd if="$dir/blk" of="$dev" bs="$bs" seek="$b" count=1 conv=sync,notrunc,fsync oflag=direct status=none 2>"$dir/dd.err"
  st=$?
  if [ "$st" -ne 0 ]; then
    echo "gen=$i blk=$b dd exit $st: $(tr '\n' ' ' < "$dir/dd.err")" >> "$dir/errors"
  fi
  ms; lat=$((now - t0))
  [ "$lat" -gt "$max" ] && max=$lat
  [ "$lat" -ge 1000 ] && echo "gen=$i blk=$b ms=$lat" >> "$dir/stalls"
  i=$((i + 1))
  echo "$i $max" > "$dir/progress"
done
ms
echo "$i $max $((now - start))" > "$dir/result"
