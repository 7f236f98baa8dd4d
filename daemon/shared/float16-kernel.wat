;; Motive's fp16 sketch decoder (SIMD): rows of k little-endian binary16 values to float32, each
;; row L2-normalised in the same call.
;;
;; decode_rows(src, dst, rows, k) -> special
;;   dst[i] = f32(half src[i]), exactly (every binary16 value is a float32); then per row
;;   ss = ((s0 + s1) + s2) + s3, where s_j sums the squares (in float64) of the row's elements at
;;   j, j + 4, j + 8, ... over its groups of four and s0 also those after the last group; unless
;;   ss = 0, dst[i] = f32(f64(dst[i]) * (1 / sqrt(ss))). The same sums in the same order as
;;   decodeFloat16Rows' JavaScript loop, so the results are bit for bit the same.
;;   Returns 1 when any value is NaN or ±Inf (all exponent bits set), else 0; the floats are then
;;   unspecified.
;;
;; A half h becomes float32 bits ((h & 0x7fff) << 13), scaled by 2^112 (exact: a power of two,
;; which also turns a half's subnormals into float32 normals), with h's sign bit on top.
;;
;; Source of daemon/shared/float16-kernel.ts (`npm run gen:wasm` rebuilds it).
(module
  (import "env" "memory" (memory 0))
  (func $half (param $h i32) (result f32)
    (f32.reinterpret_i32
      (i32.or
        (i32.reinterpret_f32
          (f32.mul
            (f32.reinterpret_i32 (i32.shl (i32.and (local.get $h) (i32.const 0x7fff)) (i32.const 13)))
            (f32.const 0x1p112)))
        (i32.shl (i32.and (local.get $h) (i32.const 0x8000)) (i32.const 16)))))
  (func (export "decode_rows") (param $src i32) (param $dst i32) (param $rows i32) (param $k i32) (result i32)
    (local $special v128) (local $h v128) (local $w v128) (local $f v128)
    (local $acc01 v128) (local $acc23 v128)
    (local $row i32) (local $out i32) (local $end i32) (local $quads i32) (local $x f32) (local $s0 f64) (local $ss f64) (local $inv f64) (local $vinv v128)
    (local.set $special (v128.const i32x4 0 0 0 0))
    (block $rows_done
      (loop $each_row
        (br_if $rows_done (i32.ge_u (local.get $row) (local.get $rows)))
        (local.set $acc01 (v128.const i32x4 0 0 0 0))
        (local.set $acc23 (v128.const i32x4 0 0 0 0))
        (local.set $out (local.get $dst))
        ;; groups of four halves (8 bytes)
        (local.set $end (i32.add (local.get $src) (i32.shl (i32.and (local.get $k) (i32.const -4)) (i32.const 1))))
        (block $quads_done
          (loop $quad
            (br_if $quads_done (i32.ge_u (local.get $src) (local.get $end)))
            (local.set $h (v128.load64_zero (local.get $src)))
            (local.set $special
              (v128.or (local.get $special)
                (i16x8.eq (v128.and (local.get $h) (v128.const i16x8 0x7c00 0x7c00 0x7c00 0x7c00 0 0 0 0))
                  (v128.const i16x8 0x7c00 0x7c00 0x7c00 0x7c00 -1 -1 -1 -1))))
            (local.set $w (i32x4.extend_low_i16x8_u (local.get $h)))
            (local.set $f
              (v128.or
                (f32x4.mul
                  (i32x4.shl (v128.and (local.get $w) (v128.const i32x4 0x7fff 0x7fff 0x7fff 0x7fff)) (i32.const 13))
                  (v128.const f32x4 0x1p112 0x1p112 0x1p112 0x1p112))
                (i32x4.shl (v128.and (local.get $w) (v128.const i32x4 0x8000 0x8000 0x8000 0x8000)) (i32.const 16))))
            (v128.store (local.get $dst) (local.get $f))
            (local.set $w (f64x2.promote_low_f32x4 (local.get $f)))
            (local.set $acc01 (f64x2.add (local.get $acc01) (f64x2.mul (local.get $w) (local.get $w))))
            (local.set $w (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $f) (local.get $f))))
            (local.set $acc23 (f64x2.add (local.get $acc23) (f64x2.mul (local.get $w) (local.get $w))))
            (local.set $src (i32.add (local.get $src) (i32.const 8)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 16)))
            (br $quad)))
        ;; the row's last k mod 4 halves, into s0
        (local.set $s0 (f64x2.extract_lane 0 (local.get $acc01)))
        (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $k) (i32.const 3)) (i32.const 1))))
        (block $tail_done
          (loop $tail
            (br_if $tail_done (i32.ge_u (local.get $src) (local.get $end)))
            (if (i32.eq (i32.and (i32.load16_u (local.get $src)) (i32.const 0x7c00)) (i32.const 0x7c00))
              (then (local.set $special (v128.const i32x4 -1 -1 -1 -1))))
            (local.set $x (call $half (i32.load16_u (local.get $src))))
            (f32.store (local.get $dst) (local.get $x))
            (local.set $s0 (f64.add (local.get $s0) (f64.mul (f64.promote_f32 (local.get $x)) (f64.promote_f32 (local.get $x)))))
            (local.set $src (i32.add (local.get $src) (i32.const 2)))
            (local.set $dst (i32.add (local.get $dst) (i32.const 4)))
            (br $tail)))
        (local.set $ss
          (f64.add
            (f64.add
              (f64.add (local.get $s0) (f64x2.extract_lane 1 (local.get $acc01)))
              (f64x2.extract_lane 0 (local.get $acc23)))
            (f64x2.extract_lane 1 (local.get $acc23))))
        (if (f64.ne (local.get $ss) (f64.const 0))
          (then
            (local.set $inv (f64.div (f64.const 1) (f64.sqrt (local.get $ss))))
            (local.set $vinv (f64x2.splat (local.get $inv)))
            (local.set $end (i32.add (local.get $out) (i32.shl (i32.and (local.get $k) (i32.const -4)) (i32.const 2))))
            (block $scaled
              (loop $scale
                (br_if $scaled (i32.ge_u (local.get $out) (local.get $end)))
                (local.set $f (v128.load (local.get $out)))
                (v128.store (local.get $out)
                  (i8x16.shuffle 0 1 2 3 4 5 6 7 16 17 18 19 20 21 22 23
                    (f32x4.demote_f64x2_zero (f64x2.mul (f64x2.promote_low_f32x4 (local.get $f)) (local.get $vinv)))
                    (f32x4.demote_f64x2_zero
                      (f64x2.mul
                        (f64x2.promote_low_f32x4 (i8x16.shuffle 8 9 10 11 12 13 14 15 0 1 2 3 4 5 6 7 (local.get $f) (local.get $f)))
                        (local.get $vinv)))))
                (local.set $out (i32.add (local.get $out) (i32.const 16)))
                (br $scale)))
            (local.set $end (i32.add (local.get $end) (i32.shl (i32.and (local.get $k) (i32.const 3)) (i32.const 2))))
            (block $scaled_tail
              (loop $scale_tail
                (br_if $scaled_tail (i32.ge_u (local.get $out) (local.get $end)))
                (f32.store (local.get $out) (f32.demote_f64 (f64.mul (f64.promote_f32 (f32.load (local.get $out))) (local.get $inv))))
                (local.set $out (i32.add (local.get $out) (i32.const 4)))
                (br $scale_tail)))))
        (local.set $row (i32.add (local.get $row) (i32.const 1)))
        (br $each_row)))
    (v128.any_true (local.get $special)))
)
