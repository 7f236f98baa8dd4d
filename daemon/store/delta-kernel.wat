;; Motive's delta-pool kernels (SIMD), over float32 rows in the imported memory.
;;
;; Each does the same arithmetic, in the same order, as the JavaScript loop it replaces (double
;; products and sums over Float32Array elements, one rounding to float32 on store), so the results
;; are bit for bit the same; four floats per iteration in two f64x2 lanes, the last n mod 4 one by
;; one. Pointers are byte offsets into the memory; no alignment is assumed.
;;
;; axpy:     dst[i] = f32(f64(dst[i]) + a * f64(src[i]))                 (a batch's apply)
;; fold:     dst[i] = f32(f64(dst[i]) + f64(delta[i])); delta[i] = 0; returns max |dst[i]|
;; maxabs:   returns max |src[i]|
;; quantize: q[i] = i8(trunc(f64(src[i]) * inv + 128.5) - 128)          (the int8 mirror's row)
;; dot:      out[0] = Σ f64(a[i]) * f64(b[i]), out[1] = Σ |f64(a[i]) * f64(b[i])|  (f64 at out;
;;           each product exact in f64; a scan's score of a pending change, and its error bound)
;;
;; Source of daemon/store/delta-kernel.ts (`npm run gen:wasm` rebuilds it).
(module
  (import "env" "memory" (memory 0))
  (func (export "axpy") (param $dst i32) (param $src i32) (param $n i32) (param $a f64)
    (local $va v128) (local $s v128) (local $d v128) (local $end i32)
    (local.set $va (f64x2.splat (local.get $a)))
    ;; end of the four-float part
    (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $quad
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $s (v128.load (local.get $src)))
        (local.set $d (v128.load (local.get $dst)))
        (v128.store (local.get $dst)
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (f32x4.demote_f64x2_zero
              (f64x2.add
                (f64x2.promote_low_f32x4 (local.get $d))
                (f64x2.mul (local.get $va) (f64x2.promote_low_f32x4 (local.get $s)))))
            (f32x4.demote_f64x2_zero
              (f64x2.add
                (f64x2.promote_low_f32x4
                  (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $d) (local.get $d)))
                (f64x2.mul (local.get $va)
                  (f64x2.promote_low_f32x4
                    (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $s) (local.get $s))))))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (br $quad)))
    ;; the last n mod 4 floats
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $src) (local.get $end)))
        (f32.store (local.get $dst)
          (f32.demote_f64
            (f64.add
              (f64.promote_f32 (f32.load (local.get $dst)))
              (f64.mul (local.get $a) (f64.promote_f32 (f32.load (local.get $src)))))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (br $tail))))

  (func (export "fold") (param $dst i32) (param $delta i32) (param $n i32) (result f32)
    (local $d v128) (local $e v128) (local $r v128) (local $max v128) (local $end i32) (local $x f32) (local $m f32)
    (local.set $max (v128.const i32x4 0 0 0 0))
    (local.set $end (i32.add (local.get $dst) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $quad
        (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
        (local.set $d (v128.load (local.get $dst)))
        (local.set $e (v128.load (local.get $delta)))
        (local.set $r
          (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
            (f32x4.demote_f64x2_zero
              (f64x2.add (f64x2.promote_low_f32x4 (local.get $d)) (f64x2.promote_low_f32x4 (local.get $e))))
            (f32x4.demote_f64x2_zero
              (f64x2.add
                (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $d) (local.get $d)))
                (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $e) (local.get $e)))))))
        (v128.store (local.get $dst) (local.get $r))
        (v128.store (local.get $delta) (v128.const i32x4 0 0 0 0))
        (local.set $max (f32x4.max (local.get $max) (f32x4.abs (local.get $r))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
        (local.set $delta (i32.add (local.get $delta) (i32.const 16)))
        (br $quad)))
    (local.set $m
      (f32.max
        (f32.max (f32x4.extract_lane 0 (local.get $max)) (f32x4.extract_lane 1 (local.get $max)))
        (f32.max (f32x4.extract_lane 2 (local.get $max)) (f32x4.extract_lane 3 (local.get $max)))))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $dst) (local.get $end)))
        (local.set $x
          (f32.demote_f64
            (f64.add (f64.promote_f32 (f32.load (local.get $dst))) (f64.promote_f32 (f32.load (local.get $delta))))))
        (f32.store (local.get $dst) (local.get $x))
        (f32.store (local.get $delta) (f32.const 0))
        (local.set $m (f32.max (local.get $m) (f32.abs (local.get $x))))
        (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
        (local.set $delta (i32.add (local.get $delta) (i32.const 4)))
        (br $tail)))
    (local.get $m))
  (func (export "maxabs") (param $src i32) (param $n i32) (result f32)
    (local $max v128) (local $end i32) (local $m f32)
    (local.set $max (v128.const i32x4 0 0 0 0))
    (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $quad
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $max (f32x4.max (local.get $max) (f32x4.abs (v128.load (local.get $src)))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (br $quad)))
    (local.set $m
      (f32.max
        (f32.max (f32x4.extract_lane 0 (local.get $max)) (f32x4.extract_lane 1 (local.get $max)))
        (f32.max (f32x4.extract_lane 2 (local.get $max)) (f32x4.extract_lane 3 (local.get $max)))))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $m (f32.max (local.get $m) (f32.abs (f32.load (local.get $src)))))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (br $tail)))
    (local.get $m))
  (func (export "quantize") (param $src i32) (param $q i32) (param $n i32) (param $inv f64)
    (local $vinv v128) (local $half v128) (local $s v128) (local $i v128) (local $end i32)
    (local.set $vinv (f64x2.splat (local.get $inv)))
    (local.set $half (f64x2.splat (f64.const 128.5)))
    (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $quad
        (br_if $done (i32.ge_u (local.get $src) (local.get $end)))
        (local.set $s (v128.load (local.get $src)))
        ;; x * inv + 128.5 lies in [1, 256): truncation is floor, as `| 0` in the JavaScript.
        (local.set $i
          (i32x4.sub
            (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
              (i32x4.trunc_sat_f64x2_s_zero
                (f64x2.add (f64x2.mul (f64x2.promote_low_f32x4 (local.get $s)) (local.get $vinv)) (local.get $half)))
              (i32x4.trunc_sat_f64x2_s_zero
                (f64x2.add
                  (f64x2.mul
                    (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $s) (local.get $s)))
                    (local.get $vinv))
                  (local.get $half))))
            (v128.const i32x4 128 128 128 128)))
        (v128.store32_lane 0 (local.get $q)
          (i8x16.narrow_i16x8_s
            (i16x8.narrow_i32x4_s (local.get $i) (local.get $i))
            (i16x8.narrow_i32x4_s (local.get $i) (local.get $i))))
        (local.set $src (i32.add (local.get $src) (i32.const 16)))
        (local.set $q (i32.add (local.get $q) (i32.const 4)))
        (br $quad)))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $src) (local.get $end)))
        (i32.store8 (local.get $q)
          (i32.sub
            (i32.trunc_sat_f64_s
              (f64.add (f64.mul (f64.promote_f32 (f32.load (local.get $src))) (local.get $inv)) (f64.const 128.5)))
            (i32.const 128)))
        (local.set $src (i32.add (local.get $src) (i32.const 4)))
        (local.set $q (i32.add (local.get $q) (i32.const 1)))
        (br $tail))))
  (func (export "dot") (param $a i32) (param $b i32) (param $n i32) (param $out i32)
    (local $x v128) (local $y v128) (local $p v128) (local $s v128) (local $t v128) (local $end i32)
    (local $pf f64) (local $ss f64) (local $tt f64)
    (local.set $s (v128.const i32x4 0 0 0 0))
    (local.set $t (v128.const i32x4 0 0 0 0))
    (local.set $end (i32.add (local.get $a) (i32.shl (i32.and (local.get $n) (i32.const -4)) (i32.const 2))))
    (block $done
      (loop $quad
        (br_if $done (i32.ge_u (local.get $a) (local.get $end)))
        (local.set $x (v128.load (local.get $a)))
        (local.set $y (v128.load (local.get $b)))
        (local.set $p (f64x2.mul (f64x2.promote_low_f32x4 (local.get $x)) (f64x2.promote_low_f32x4 (local.get $y))))
        (local.set $s (f64x2.add (local.get $s) (local.get $p)))
        (local.set $t (f64x2.add (local.get $t) (f64x2.abs (local.get $p))))
        (local.set $p
          (f64x2.mul
            (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $x) (local.get $x)))
            (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $y) (local.get $y)))))
        (local.set $s (f64x2.add (local.get $s) (local.get $p)))
        (local.set $t (f64x2.add (local.get $t) (f64x2.abs (local.get $p))))
        (local.set $a (i32.add (local.get $a) (i32.const 16)))
        (local.set $b (i32.add (local.get $b) (i32.const 16)))
        (br $quad)))
    (local.set $ss (f64.add (f64x2.extract_lane 0 (local.get $s)) (f64x2.extract_lane 1 (local.get $s))))
    (local.set $tt (f64.add (f64x2.extract_lane 0 (local.get $t)) (f64x2.extract_lane 1 (local.get $t))))
    (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $n) (i32.const 3)) (i32.const 2))))
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $a) (local.get $end)))
        (local.set $pf (f64.mul (f64.promote_f32 (f32.load (local.get $a))) (f64.promote_f32 (f32.load (local.get $b)))))
        (local.set $ss (f64.add (local.get $ss) (local.get $pf)))
        (local.set $tt (f64.add (local.get $tt) (f64.abs (local.get $pf))))
        (local.set $a (i32.add (local.get $a) (i32.const 4)))
        (local.set $b (i32.add (local.get $b) (i32.const 4)))
        (br $tail)))
    (f64.store (local.get $out) (local.get $ss))
    (f64.store offset=8 (local.get $out) (local.get $tt)))
)
