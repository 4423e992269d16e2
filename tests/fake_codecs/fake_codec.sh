#!/bin/sh
# A stand-in for an external codec binary (tests/test_faults.py): fake_codec.sh MODE INPUT OUTPUT.
# If $FAKE_CODEC_PIDS names a folder, each call leaves a file there: "<its pid> <its parent's pid>"
# (the parent is the rdbench worker), and a hanging call adds the pid of the child it waits for.
mode=$1 in=$2 out=$3
[ -n "$FAKE_CODEC_PIDS" ] && echo "$$ $PPID" > "$FAKE_CODEC_PIDS/$mode.$$"
case $mode in
  copy) cp "$in" "$out" ;;
  slow) sleep 0.4; cp "$in" "$out" ;;                  # long enough to be killed mid-item
  hang)                                                 # a process tree that never ends
    sleep 3000 & child=$!
    [ -n "$FAKE_CODEC_PIDS" ] && echo "$child" >> "$FAKE_CODEC_PIDS/$mode.$$"
    wait ;;
  segv) kill -SEGV $$ ;;                                # dies by a signal, as a crashing binary
  garbage) printf 'this is not an image\n%.0s' 1 2 3 4 5 6 7 8 > "$out" ;;
  empty) : > "$out" ;;                                  # exit 0, an empty output file
  nothing) ;;                                           # exit 0, no output file at all
  oom) kill -KILL $PPID ;;                              # the OOM killer takes the worker
  chatty) head -c 300000000 /dev/zero; head -c 1000000 /dev/zero >&2; echo "last words" >&2
          cp "$in" "$out" ;;                            # 300 MB on stdout, then a good output
  huge) head -c 60000000 /dev/zero > "$out" ;;          # a 60 MB "bitstream" of a tiny image
  *) echo "fake_codec.sh: unknown mode $mode" >&2; exit 64 ;;
esac
