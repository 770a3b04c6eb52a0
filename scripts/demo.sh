#!/usr/bin/env bash
# npm run demo: build examples/seed.ts into one executable and start it as a daemon with 2 workers.
set -eu
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
mkdir -p build
echo "building build/hello from examples/seed.ts ..."
bun src/cli.ts build examples/seed.ts -o build/hello >/dev/null
port=$(bun -e 'const s = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } }); console.log(s.port); s.stop(true)')
dir="$PWD/build"
if ./build/hello --status --pid-file "$dir/hello.pid" >/dev/null; then
  echo "a demo daemon is already running: stopping it first"
  ./build/hello --stop --pid-file "$dir/hello.pid"
fi
pid=$(./build/hello --daemon --workers 2 --pid-file "$dir/hello.pid" --log-file "$dir/hello.log" -- "$port")
cat <<EOT
started: master pid $pid, 2 workers, listening on 127.0.0.1:$port (ps -o pid,ppid,sid,comm --ppid $pid)

  socat - TCP:127.0.0.1:$port                       # "Hello from PID …", a different worker each time
  ./build/hello --status --pid-file $dir/hello.pid  # master and workers: pid, age, restarts, RSS
  kill -HUP \$(cat $dir/hello.pid)                   # rolling restart (TTIN/TTOU: one worker more/less)
  tail $dir/hello.log
  ./build/hello --stop   --pid-file $dir/hello.pid  # stop it
EOT
