;; cloud_ndvi.wat - WASI preview 1 command for orbitq's demo workload.
;; Reads /in/input (OQT1: 16-byte header, then pixel-interleaved u16 blue, green, red, NIR),
;; computes per pixel NDVI = (nir - red) / (nir + red) in integer thousandths and a simple cloud
;; test (bright in blue and not vegetated), and writes /out/ndvi_cloud.pgm: a binary PGM (P5)
;; where 255 = cloud and 0..250 = (ndvi_x1000 + 1000) / 8 for clear pixels.
;; Prints "pixels=N cloud_permille=C ndvi_mean_x1000=M" to stdout.
;; Exit codes: 0 ok, 2 cannot open input, 3 input too large, 4 bad header, 5 read error,
;; 6 cannot create output, 7 write error.
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))

  ;; layout: 0..63 scratch (iovec @0, count @8, fd @12); 64.. names; 1024.. text;
  ;; IN = 64 KiB (input, up to IN_MAX); OUT = IN + IN_MAX (PGM header + pixels)
  (memory (export "memory") 170)            ;; 170 pages = 10.6 MiB
  (global $IN i32 (i32.const 65536))
  (global $IN_MAX i32 (i32.const 8388608))  ;; 8 MiB of input at most
  (global $OUT i32 (i32.const 8454144))     ;; IN + IN_MAX
  (global $BLUE_CLOUD i32 (i32.const 11750)) ;; Landsat 8 L1 DN threshold (tuned vs the BQA band)
  (global $NDVI_CLOUD i32 (i32.const 400))   ;; clouds are not vegetation: ndvi < 0.4
  (data (i32.const 64) "input")
  (data (i32.const 80) "ndvi_cloud.pgm")
  (data (i32.const 128) "pixels=")
  (data (i32.const 144) " cloud_permille=")
  (data (i32.const 176) " ndvi_mean_x1000=")

  ;; decimal text of a signed i32 at $dst; returns the number of bytes written
  (func $itoa (param $v i32) (param $dst i32) (result i32)
    (local $n i32) (local $i i32) (local $j i32) (local $t i32) (local $neg i32)
    (if (i32.lt_s (local.get $v) (i32.const 0))
      (then (i32.store8 (local.get $dst) (i32.const 45))
            (local.set $neg (i32.const 1))
            (local.set $dst (i32.add (local.get $dst) (i32.const 1)))
            (local.set $v (i32.sub (i32.const 0) (local.get $v)))))
    (loop $digits                              ;; least significant first
      (i32.store8 (i32.add (local.get $dst) (local.get $n))
        (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
      (br_if $digits (local.get $v)))
    (local.set $j (i32.sub (local.get $n) (i32.const 1)))
    (block $done (loop $rev                    ;; reverse in place
      (br_if $done (i32.ge_s (local.get $i) (local.get $j)))
      (local.set $t (i32.load8_u (i32.add (local.get $dst) (local.get $i))))
      (i32.store8 (i32.add (local.get $dst) (local.get $i))
        (i32.load8_u (i32.add (local.get $dst) (local.get $j))))
      (i32.store8 (i32.add (local.get $dst) (local.get $j)) (local.get $t))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.set $j (i32.sub (local.get $j) (i32.const 1)))
      (br $rev)))
    (i32.add (local.get $n) (local.get $neg)))

  ;; write all $len bytes at $ptr to $fd, looping over short writes; returns errno
  (func $write_all (param $fd i32) (param $ptr i32) (param $len i32) (result i32)
    (local $err i32)
    (block $done (loop $more
      (br_if $done (i32.eqz (local.get $len)))
      (i32.store (i32.const 0) (local.get $ptr))
      (i32.store (i32.const 4) (local.get $len))
      (local.set $err (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (local.get $err) (then (return (local.get $err))))
      (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 8))))
      (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 8))))
      (br $more)))
    (i32.const 0))

  ;; copy $len bytes from $src to $dst, return $dst + $len
  (func $append (param $dst i32) (param $src i32) (param $len i32) (result i32)
    (memory.copy (local.get $dst) (local.get $src) (local.get $len))
    (i32.add (local.get $dst) (local.get $len)))

  ;; append a byte at $p, return $p + 1
  (func $put (param $p i32) (param $b i32) (result i32)
    (i32.store8 (local.get $p) (local.get $b))
    (i32.add (local.get $p) (i32.const 1)))

  (func (export "_start")
    (local $fd i32) (local $have i32) (local $w i32) (local $h i32) (local $n i32)
    (local $i i32) (local $p i32) (local $q i32) (local $hdr i32)
    (local $blue i32) (local $red i32) (local $nir i32) (local $sum i32) (local $ndvi i32)
    (local $clouds i32) (local $clear_sum i64) (local $clear i32) (local $t i32)

    ;; --- read the whole input (fd 3 = /in, read-only) ---
    (if (call $path_open (i32.const 3) (i32.const 0) (i32.const 64) (i32.const 5)
          (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (call $proc_exit (i32.const 2))))
    (local.set $fd (i32.load (i32.const 12)))
    (loop $read
      (if (i32.ge_u (local.get $have) (global.get $IN_MAX)) (then (call $proc_exit (i32.const 3))))
      (i32.store (i32.const 0) (i32.add (global.get $IN) (local.get $have)))
      (i32.store (i32.const 4) (i32.sub (global.get $IN_MAX) (local.get $have)))
      (if (call $fd_read (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))
        (then (call $proc_exit (i32.const 5))))
      (local.set $have (i32.add (local.get $have) (i32.load (i32.const 8))))
      (br_if $read (i32.load (i32.const 8))))
    (drop (call $fd_close (local.get $fd)))

    ;; --- header: magic "OQT1", w, h, bands = 4, bits = 16, exact size ---
    (local.set $w (i32.load offset=4 (global.get $IN)))
    (local.set $h (i32.load offset=8 (global.get $IN)))
    (if (i32.or (i32.or
          (i32.ne (i32.load (global.get $IN)) (i32.const 0x3154514F))
          (i32.ne (i32.load offset=12 (global.get $IN)) (i32.const 0x00100004)))
          (i32.or (i32.gt_u (local.get $w) (i32.const 4096)) (i32.gt_u (local.get $h) (i32.const 4096))))
      (then (call $proc_exit (i32.const 4))))
    (local.set $n (i32.mul (local.get $w) (local.get $h)))
    (if (i32.ne (local.get $have) (i32.add (i32.const 16) (i32.shl (local.get $n) (i32.const 3))))
      (then (call $proc_exit (i32.const 4))))
    (if (i32.gt_u (local.get $n) (i32.const 2000000)) (then (call $proc_exit (i32.const 3))))

    ;; --- PGM header "P5\n<w> <h>\n255\n" ---
    (local.set $q (global.get $OUT))
    (local.set $q (call $put (call $put (call $put (local.get $q) (i32.const 80)) (i32.const 53)) (i32.const 10)))
    (local.set $q (i32.add (local.get $q) (call $itoa (local.get $w) (local.get $q))))
    (local.set $q (call $put (local.get $q) (i32.const 32)))
    (local.set $q (i32.add (local.get $q) (call $itoa (local.get $h) (local.get $q))))
    (local.set $q (call $put (call $put (call $put (call $put (call $put (local.get $q)
      (i32.const 10)) (i32.const 50)) (i32.const 53)) (i32.const 53)) (i32.const 10)))
    (local.set $hdr (i32.sub (local.get $q) (global.get $OUT)))

    ;; --- per pixel ---
    (local.set $p (i32.add (global.get $IN) (i32.const 16)))
    (block $end (loop $px
      (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $blue (i32.load16_u (local.get $p)))
      (local.set $red (i32.load16_u offset=4 (local.get $p)))
      (local.set $nir (i32.load16_u offset=6 (local.get $p)))
      (local.set $sum (i32.add (local.get $nir) (local.get $red)))
      (local.set $ndvi (select
        (i32.div_s (i32.mul (i32.sub (local.get $nir) (local.get $red)) (i32.const 1000))
                   (select (local.get $sum) (i32.const 1) (local.get $sum)))
        (i32.const 0) (local.get $sum)))
      (if (i32.and (i32.gt_u (local.get $blue) (global.get $BLUE_CLOUD))
                   (i32.lt_s (local.get $ndvi) (global.get $NDVI_CLOUD)))
        (then (i32.store8 (local.get $q) (i32.const 255))
              (local.set $clouds (i32.add (local.get $clouds) (i32.const 1))))
        (else (i32.store8 (local.get $q)
                (i32.shr_u (i32.add (local.get $ndvi) (i32.const 1000)) (i32.const 3)))
              (local.set $clear_sum (i64.add (local.get $clear_sum) (i64.extend_i32_s (local.get $ndvi))))))
      (local.set $p (i32.add (local.get $p) (i32.const 8)))
      (local.set $q (i32.add (local.get $q) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $px)))

    ;; --- write /out/ndvi_cloud.pgm (fd 4) ---
    (if (call $path_open (i32.const 4) (i32.const 0) (i32.const 80) (i32.const 14)
          (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12))
      (then (call $proc_exit (i32.const 6))))
    (if (call $write_all (i32.load (i32.const 12)) (global.get $OUT) (i32.add (local.get $hdr) (local.get $n)))
      (then (call $proc_exit (i32.const 7))))
    (drop (call $fd_close (i32.load (i32.const 12))))

    ;; --- summary line on stdout ---
    (local.set $clear (i32.sub (local.get $n) (local.get $clouds)))
    (local.set $q (call $append (i32.const 1024) (i32.const 128) (i32.const 7)))
    (local.set $q (i32.add (local.get $q) (call $itoa (local.get $n) (local.get $q))))
    (local.set $q (call $append (local.get $q) (i32.const 144) (i32.const 16)))
    (local.set $q (i32.add (local.get $q) (call $itoa
      (i32.div_u (i32.mul (local.get $clouds) (i32.const 1000)) (select (local.get $n) (i32.const 1) (local.get $n)))
      (local.get $q))))
    (local.set $q (call $append (local.get $q) (i32.const 176) (i32.const 17)))
    (local.set $q (i32.add (local.get $q) (call $itoa
      (i32.wrap_i64 (i64.div_s (local.get $clear_sum)
        (i64.extend_i32_u (select (local.get $clear) (i32.const 1) (local.get $clear)))))
      (local.get $q))))
    (local.set $q (call $put (local.get $q) (i32.const 10)))
    (drop (call $write_all (i32.const 1) (i32.const 1024) (i32.sub (local.get $q) (i32.const 1024))))))
