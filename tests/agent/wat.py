"""Small WASI preview 1 commands in WAT for the agent's tests (our own code).

Every program exports `memory` and `_start`. The sandbox preopens fd 3 = /in (read-only) and
fd 4 = /out. Offsets used by the helpers: iovec at 0, a count at 8, an opened fd at 12.
"""

from __future__ import annotations

import wasmtime

from orbitq.clients.agent.calibrate import SPIN_FUNCTION

WASI = "wasi_snapshot_preview1"

IMPORTS = f"""
  (import "{WASI}" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "{WASI}" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "{WASI}" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "{WASI}" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "{WASI}" "proc_exit" (func $proc_exit (param i32)))
"""

# $write: write `len` bytes at `ptr` to `fd`; $hex32: 8 hex digits of a value at `dst`.
HELPERS = """
  (func $write (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
  (func $hex32 (param $v i32) (param $dst i32)
    (local $i i32) (local $d i32)
    (loop $l
      (local.set $d (i32.and (i32.shr_u (local.get $v) (i32.sub (i32.const 28)
        (i32.shl (local.get $i) (i32.const 2)))) (i32.const 15)))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
        (i32.add (local.get $d) (select (i32.const 48) (i32.const 87)
          (i32.lt_u (local.get $d) (i32.const 10)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const 8)))))
"""

# path_open(dirfd, lookup 0, path, len, oflags CREAT|TRUNC = 9, rights FD_WRITE = 64, 0, 0, &fd)
_CREATE = """(call $path_open (i32.const 4) (i32.const 0) (i32.const {ptr}) (i32.const {length})
          (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12))"""


def wasm(text: str) -> bytes:
    return bytes(wasmtime.wat2wasm(text))


def hello() -> str:
    """'hello' to stdout and to /out/hello.txt."""
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 16) "hello.txt")
  (data (i32.const 32) "hello\\n")
  {HELPERS}
  (func (export "_start")
    (drop (call $write (i32.const 1) (i32.const 32) (i32.const 6)))
    (if {_CREATE.format(ptr=16, length=9)} (then (call $proc_exit (i32.const 2))))
    (drop (call $write (i32.load (i32.const 12)) (i32.const 32) (i32.const 6)))
    (drop (call $fd_close (i32.load (i32.const 12))))))
"""


def two_files() -> str:
    """/out/a.txt and /out/sub/b.txt: a result packed as an archive."""
    return f"""(module {IMPORTS}
  (import "{WASI}" "path_create_directory" (func $mkdir (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "a.txt")
  (data (i32.const 32) "sub")
  (data (i32.const 48) "sub/b.txt")
  (data (i32.const 64) "AB")
  {HELPERS}
  (func (export "_start")
    (if {_CREATE.format(ptr=16, length=5)} (then (call $proc_exit (i32.const 2))))
    (drop (call $write (i32.load (i32.const 12)) (i32.const 64) (i32.const 1)))
    (if (call $mkdir (i32.const 4) (i32.const 32) (i32.const 3))
      (then (call $proc_exit (i32.const 3))))
    (if {_CREATE.format(ptr=48, length=9)} (then (call $proc_exit (i32.const 4))))
    (drop (call $write (i32.load (i32.const 12)) (i32.const 65) (i32.const 1)))))
"""


def spin(iterations: int) -> str:
    """A compute loop (xorshift32 and a multiply-add); the result in hex to /out/spin.txt."""
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 16) "spin.txt")
  {HELPERS}
  {SPIN_FUNCTION}
  (func (export "_start")
    (call $hex32 (call $spin (i32.const {iterations})) (i32.const 1024))
    (if {_CREATE.format(ptr=16, length=8)} (then (call $proc_exit (i32.const 2))))
    (drop (call $write (i32.load (i32.const 12)) (i32.const 1024) (i32.const 8)))))
"""


def readsum() -> str:
    """FNV-1a over /in/input (64 KiB reads), in hex to stdout and /out/sum.txt; exits 2 when
    there is no input."""
    return f"""(module {IMPORTS}
  (memory (export "memory") 3)
  (data (i32.const 16) "sum.txt")
  (data (i32.const 64) "input")
  {HELPERS}
  (func (export "_start")
    (local $fd i32) (local $n i32) (local $i i32) (local $h i32)
    (local.set $h (i32.const 2166136261))
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 5)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (call $proc_exit (i32.const 2))))
    (local.set $fd (i32.load (i32.const 12)))
    (block $eof (loop $chunk
      (i32.store (i32.const 0) (i32.const 65536))
      (i32.store (i32.const 4) (i32.const 65536))
      (if (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))
        (then (call $proc_exit (i32.const 3))))
      (local.set $n (i32.load (i32.const 8)))
      (br_if $eof (i32.eqz (local.get $n)))
      (local.set $i (i32.const 0))
      (loop $byte
        (local.set $h (i32.mul (i32.xor (local.get $h)
          (i32.load8_u (i32.add (i32.const 65536) (local.get $i)))) (i32.const 16777619)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $byte (i32.lt_u (local.get $i) (local.get $n))))
      (br $chunk)))
    (drop (call $fd_close (local.get $fd)))
    (call $hex32 (local.get $h) (i32.const 1024))
    (i32.store8 (i32.const 1032) (i32.const 10))
    (drop (call $write (i32.const 1) (i32.const 1024) (i32.const 9)))
    (if {_CREATE.format(ptr=16, length=7)} (then (call $proc_exit (i32.const 4))))
    (drop (call $write (i32.load (i32.const 12)) (i32.const 1024) (i32.const 9)))))
"""


def trap_unreachable() -> str:
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (func (export "_start") unreachable))
"""


def exit_with(code: int) -> str:
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (func (export "_start") (call $proc_exit (i32.const {code}))))
"""


def forever() -> str:
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (func (export "_start") (loop $l (br $l))))
"""


def memhog() -> str:
    """Grows memory 16 pages at a time until memory.grow fails, then exits 9."""
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $l
      (if (i32.eq (memory.grow (i32.const 16)) (i32.const -1))
        (then (call $proc_exit (i32.const 9))))
      (br $l))))
"""


def big_memory(pages: int) -> str:
    return f"""(module {IMPORTS}
  (memory (export "memory") {pages})
  (func (export "_start")))
"""


def big_writer(*, to_stdout: bool = False) -> str:
    """Writes 1 MiB chunks (to /out/big.bin or stdout) until a write fails; then exits 5."""
    open_file = (
        ""
        if to_stdout
        else f"(if {_CREATE.format(ptr=16, length=7)} (then (call $proc_exit (i32.const 4))))"
    )
    fd = "(i32.const 1)" if to_stdout else "(i32.load (i32.const 12))"
    return f"""(module {IMPORTS}
  (memory (export "memory") 17)
  (data (i32.const 16) "big.bin")
  {HELPERS}
  (func (export "_start") {open_file}
    (loop $l
      (if (call $write {fd} (i32.const 65536) (i32.const 1048576))
        (then (call $proc_exit (i32.const 5))))
      (br $l))))
"""


def many_files(count: int) -> str:
    """Creates `count` empty files in /out (names: 8 hex digits); exits 5 when one fails."""
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  {HELPERS}
  (func (export "_start")
    (local $i i32)
    (loop $l
      (call $hex32 (local.get $i) (i32.const 256))
      (if {_CREATE.format(ptr=256, length=8)} (then (call $proc_exit (i32.const 5))))
      (drop (call $fd_close (i32.load (i32.const 12))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (i32.const {count}))))))
"""


def escape_attempt() -> str:
    """Tries ../../../../etc/passwd through /in, then creating /in/new.txt; prints the two
    errnos in hex to stdout, and writes nothing else."""
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 64) "../../../../etc/passwd")
  (data (i32.const 128) "new.txt")
  {HELPERS}
  (func (export "_start")
    (call $hex32 (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 22)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12))
          (i32.const 1024))
    (i32.store8 (i32.const 1032) (i32.const 32))
    (call $hex32 (call $path_open (i32.const 3) (i32.const 0) (i32.const 128) (i32.const 7)
          (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12))
          (i32.const 1033))
    (i32.store8 (i32.const 1041) (i32.const 10))
    (drop (call $write (i32.const 1) (i32.const 1024) (i32.const 18)))))
"""


def symlink_out(target: str) -> str:
    """Creates /out/link -> `target`; prints the errno in hex."""
    return f"""(module {IMPORTS}
  (import "{WASI}" "path_symlink" (func $symlink (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "{target}")
  (data (i32.const 128) "link")
  {HELPERS}
  (func (export "_start")
    (call $hex32 (call $symlink (i32.const 64) (i32.const {len(target)}) (i32.const 4)
          (i32.const 128) (i32.const 4)) (i32.const 1024))
    (drop (call $write (i32.const 1) (i32.const 1024) (i32.const 8)))))
"""


def foreign_import() -> str:
    return f"""(module {IMPORTS}
  (import "env" "host_time" (func $t (result i64)))
  (memory (export "memory") 1)
  (func (export "_start") (drop (call $t))))
"""


def no_start() -> str:
    return """(module (memory (export "memory") 1) (func (export "main")))"""


def clock_and_random() -> str:
    """clock_time_get (8 bytes), then random_get twice (8 + 8 bytes) to /out/world.bin."""
    return f"""(module {IMPORTS}
  (import "{WASI}" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (import "{WASI}" "random_get" (func $random (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "world.bin")
  {HELPERS}
  (func (export "_start")
    (drop (call $clock (i32.const 0) (i64.const 1) (i32.const 256)))
    (drop (call $random (i32.const 264) (i32.const 8)))
    (drop (call $random (i32.const 272) (i32.const 8)))
    (if {_CREATE.format(ptr=16, length=9)} (then (call $proc_exit (i32.const 2))))
    (drop (call $write (i32.load (i32.const 12)) (i32.const 256) (i32.const 24)))))
"""
