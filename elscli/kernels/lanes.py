"""Compressing a block's live lanes, so that exps are spent only on weights that can matter.

At mid noise (t ~ 0.25-0.45 on MNIST, P = 7 and 9 in the paper's schedule) a third to a half of a block's
lanes lie below e^-40 of their pixel's running maximum, spread over nearly every 8-image chunk, so
skipping whole chunks saves little.  :func:`compress_live` copies the live lanes' log weights and centre
values to the front of two buffers, 8 lanes per step with vector compress stores
(``llvm.masked.compressstore``: one AVX-512 ``vcompresspd``/``vcompressps`` each), which costs about a
quarter of what an exp and its sums cost per lane (measured: 81 ns against 290 ns per 504 lanes).  On
CPUs without AVX-512 LLVM lowers the compress store to scalar code, so the machines keep off this path
there (``KernelOptions.compress_lanes`` of :mod:`elscli.machines.patch_dictionary` defaults to
:data:`HAS_COMPRESS_STORE`).
"""
import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic


def _host_has_avx512f() -> bool:
    # Numba's own setting (NUMBA_CPU_FEATURES, read by Numba at import) decides what it compiles for, so it
    # decides here too: a documented exception to "the environment only at the CLI edge" (tests/test_imports.py).
    try:
        from numba.core import config
        features = config.CPU_FEATURES if config.CPU_FEATURES is not None else \
            llvm.get_host_cpu_features().flatten()
    except Exception:                    # pragma: no cover - unknown host: take the portable path
        return False
    return "+avx512f" in features.split(",")


#: Whether this CPU has vector compress stores (AVX-512F), without which compressing would not pay.
HAS_COMPRESS_STORE = _host_has_avx512f()


@intrinsic
def _compress_live8(typingctx, logw, centre, n8, thr, out_logw, out_centre):
    """For k < n8 (a multiple of 8), in order: copy logw[k] and centre[k] of the lanes with logw[k] >= thr
    to out_logw[kk], out_centre[kk] (kk = 0, 1, ...); returns kk.  Arrays: C-contiguous 1-D, logw and
    out_logw float64, centre and out_centre float32."""
    arrays = (logw, centre, out_logw, out_centre)
    if not all(isinstance(a, types.Array) and a.ndim == 1 and a.layout == "C" for a in arrays):
        return None                     # the loop reads and writes raw memory: contiguous 1-D arrays only
    sig = types.int64(logw, centre, n8, thr, out_logw, out_centre)

    def codegen(context, builder, signature, args):
        a_logw, a_cen, a_n8, a_thr, a_out, a_outc = args
        lw_ptr = context.make_array(signature.args[0])(context, builder, a_logw).data
        c_ptr = context.make_array(signature.args[1])(context, builder, a_cen).data
        o_ptr = context.make_array(signature.args[4])(context, builder, a_out).data
        oc_ptr = context.make_array(signature.args[5])(context, builder, a_outc).data
        d, f, i64, i32 = ir.DoubleType(), ir.FloatType(), ir.IntType(64), ir.IntType(32)
        v8d, v8f, v8b = ir.VectorType(d, 8), ir.VectorType(f, 8), ir.VectorType(ir.IntType(1), 8)
        mod = builder.module
        store_d = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [v8d, ir.PointerType(d), v8b]), "llvm.masked.compressstore.v8f64")
        store_f = cgutils.get_or_insert_function(
            mod, ir.FunctionType(ir.VoidType(), [v8f, ir.PointerType(f), v8b]), "llvm.masked.compressstore.v8f32")
        ctpop = cgutils.get_or_insert_function(mod, ir.FunctionType(ir.IntType(8), [ir.IntType(8)]),
                                               "llvm.ctpop.i8")
        thr_v = builder.insert_element(ir.Constant(v8d, ir.Undefined), a_thr, ir.Constant(i32, 0))
        thr_v = builder.shuffle_vector(thr_v, ir.Constant(v8d, ir.Undefined),
                                       ir.Constant(ir.VectorType(i32, 8), [0] * 8))
        entry = builder.block
        loop = builder.append_basic_block("compress.loop")
        done = builder.append_basic_block("compress.done")
        builder.cbranch(builder.icmp_signed(">", a_n8, ir.Constant(i64, 0)), loop, done)
        builder.position_at_end(loop)
        k = builder.phi(i64)
        kk = builder.phi(i64)
        k.add_incoming(ir.Constant(i64, 0), entry)
        kk.add_incoming(ir.Constant(i64, 0), entry)
        v = builder.load(builder.bitcast(builder.gep(lw_ptr, [k]), ir.PointerType(v8d)), align=8)
        c = builder.load(builder.bitcast(builder.gep(c_ptr, [k]), ir.PointerType(v8f)), align=4)
        live = builder.fcmp_ordered(">=", v, thr_v)
        builder.call(store_d, [v, builder.gep(o_ptr, [kk]), live])
        builder.call(store_f, [c, builder.gep(oc_ptr, [kk]), live])
        nlive = builder.zext(builder.call(ctpop, [builder.bitcast(live, ir.IntType(8))]), i64)
        k_next = builder.add(k, ir.Constant(i64, 8))
        kk_next = builder.add(kk, nlive)
        k.add_incoming(k_next, loop)
        kk.add_incoming(kk_next, loop)
        builder.cbranch(builder.icmp_signed("<", k_next, a_n8), loop, done)
        builder.position_at_end(done)
        result = builder.phi(i64)
        result.add_incoming(ir.Constant(i64, 0), entry)
        result.add_incoming(kk_next, loop)
        return result
    return sig, codegen


@njit(cache=True)
def compress_live(logw, centre, n, thr, out_logw, out_centre):
    """The lanes k < n with ``logw[k] >= thr``, in order: their log weights to ``out_logw[:kk]`` and centre
    values to ``out_centre[:kk]``; returns kk.  logw/out_logw float64, centre/out_centre float32, all
    C-contiguous 1-D, the outputs at least n long."""
    n8 = n - n % 8
    kk = _compress_live8(logw, centre, n8, thr, out_logw, out_centre)
    for k in range(n8, n):
        if logw[k] >= thr:
            out_logw[kk] = logw[k]
            out_centre[kk] = centre[k]
            kk += 1
    return kk
