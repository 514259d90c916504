# Sourced by the demo and the benchmarks: start Debian's mosquitto on a free loopback port.
# Sets broker_port and broker_pid; the caller kills broker_pid on exit.
start_broker() {
    local workdir="$1"
    broker_port="$(.venv/bin/python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    printf 'listener %s 127.0.0.1\nallow_anonymous true\npersistence false\n' "$broker_port" >"$workdir/mosquitto.conf"
    local mosquitto_bin
    mosquitto_bin="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
    "$mosquitto_bin" -c "$workdir/mosquitto.conf" >"$workdir/mosquitto.log" 2>&1 &
    broker_pid=$!
    for _ in $(seq 50); do
        (echo >"/dev/tcp/127.0.0.1/$broker_port") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "mosquitto did not start on 127.0.0.1:$broker_port (see $workdir/mosquitto.log)" >&2
    return 1
}
