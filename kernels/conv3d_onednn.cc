// 3D convolution for XLA:CPU through oneDNN: forward, backward-data and backward-weights as XLA FFI
// handlers, exported to Python as PyCapsules (module `jaxsyn.kernels._onednn`).
//
// Layouts are jaxsyn's: activations NDHWC, weights DHWIO, both dense row-major. Activations go to
// oneDNN as they are (`ndhwc`); the weights go in as `format_tag::any` and are reordered into the
// blocked layout the chosen implementation wants (a plain `dhwio` weight makes oneDNN fall back to a
// gemm path that is ~50x slower). Attributes: stride, padding_lo, padding_hi, dilation (3 each).
//
// Primitives are cached by (kind, dtype, shapes, attributes). Scratchpads are user-managed and
// allocated per call, so concurrent calls (several simulated devices, independent ops) never share
// one; execution itself is serialised because every call already uses all of oneDNN's threads.

#include <Python.h>

#include <array>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using dnnl::memory;
using tag = dnnl::memory::format_tag;

enum class Kind : int { kForward = 0, kBackwardData = 1, kBackwardWeights = 2 };

struct Key {
  Kind kind;
  memory::data_type dtype;
  std::array<int64_t, 5> x;  // N, D, H, W, C
  std::array<int64_t, 5> w;  // KD, KH, KW, I, O
  std::array<int64_t, 5> y;  // N, OD, OH, OW, O
  std::array<int64_t, 3> stride, lo, hi, dilation;
  bool operator<(const Key& o) const {
    return std::tie(kind, dtype, x, w, y, stride, lo, hi, dilation) <
           std::tie(o.kind, o.dtype, o.x, o.w, o.y, o.stride, o.lo, o.hi, o.dilation);
  }
};

// One cached convolution plus the weight reorder between DHWIO and its preferred layout.
struct Entry {
  dnnl::primitive conv;
  memory::desc x_md, y_md;       // ndhwc
  memory::desc w_plain;          // dhwio
  memory::desc w_md;             // what the convolution wants (weights or diff_weights)
  bool reorder = false;          // w_md differs from w_plain
  dnnl::primitive w_reorder;     // plain -> w_md (fwd, bwd-data) or w_md -> plain (bwd-weights)
  size_t scratch = 0;            // conv scratchpad bytes
  size_t w_scratch = 0;          // reorder scratchpad bytes
};

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

std::mutex cache_mutex;
std::mutex exec_mutex;
std::map<Key, std::shared_ptr<Entry>>& Cache() {
  static auto* cache = new std::map<Key, std::shared_ptr<Entry>>();
  return *cache;
}

memory::dims Ncdhw(const std::array<int64_t, 5>& ndhwc) {
  return {ndhwc[0], ndhwc[4], ndhwc[1], ndhwc[2], ndhwc[3]};
}

std::shared_ptr<Entry> Build(const Key& k) {
  auto& eng = Engine();
  auto e = std::make_shared<Entry>();
  const memory::dims xd = Ncdhw(k.x), yd = Ncdhw(k.y);
  const memory::dims wd = {k.w[4], k.w[3], k.w[0], k.w[1], k.w[2]};  // O, I, KD, KH, KW
  const memory::dims strides = {k.stride[0], k.stride[1], k.stride[2]};
  // oneDNN counts dilation from 0 (0 = dense), XLA from 1.
  const memory::dims dil = {k.dilation[0] - 1, k.dilation[1] - 1, k.dilation[2] - 1};
  const memory::dims lo = {k.lo[0], k.lo[1], k.lo[2]};
  const memory::dims hi = {k.hi[0], k.hi[1], k.hi[2]};
  e->x_md = memory::desc(xd, k.dtype, tag::ndhwc);
  e->y_md = memory::desc(yd, k.dtype, tag::ndhwc);
  e->w_plain = memory::desc(wd, k.dtype, tag::dhwio);
  const memory::desc w_any(wd, k.dtype, tag::any);

  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto fwd = dnnl::convolution_forward::primitive_desc(
      eng, dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, e->x_md,
      w_any, e->y_md, strides, dil, lo, hi, attr);
  dnnl::primitive_attr reorder_attr;
  reorder_attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  if (k.kind == Kind::kForward) {
    e->w_md = fwd.weights_desc();
    e->conv = dnnl::convolution_forward(fwd);
    e->scratch = fwd.scratchpad_desc().get_size();
  } else if (k.kind == Kind::kBackwardData) {
    auto bwd = dnnl::convolution_backward_data::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, e->x_md, w_any, e->y_md, strides, dil, lo, hi,
        fwd, attr);
    e->w_md = bwd.weights_desc();
    e->conv = dnnl::convolution_backward_data(bwd);
    e->scratch = bwd.scratchpad_desc().get_size();
  } else {
    auto bwd = dnnl::convolution_backward_weights::primitive_desc(
        eng, dnnl::algorithm::convolution_direct, e->x_md, w_any, e->y_md, strides, dil, lo, hi,
        fwd, attr);
    e->w_md = bwd.diff_weights_desc();
    e->conv = dnnl::convolution_backward_weights(bwd);
    e->scratch = bwd.scratchpad_desc().get_size();
  }
  e->reorder = e->w_md != e->w_plain;
  if (e->reorder) {
    const bool to_plain = k.kind == Kind::kBackwardWeights;
    auto rpd = to_plain
                   ? dnnl::reorder::primitive_desc(eng, e->w_md, eng, e->w_plain, reorder_attr)
                   : dnnl::reorder::primitive_desc(eng, e->w_plain, eng, e->w_md, reorder_attr);
    e->w_reorder = dnnl::reorder(rpd);
    e->w_scratch = rpd.scratchpad_desc().get_size();
  }
  return e;
}

std::shared_ptr<Entry> Lookup(const Key& k) {
  {
    std::lock_guard<std::mutex> lock(cache_mutex);
    auto it = Cache().find(k);
    if (it != Cache().end()) return it->second;
  }
  auto e = Build(k);
  std::lock_guard<std::mutex> lock(cache_mutex);
  return Cache().emplace(k, e).first->second;
}

// 64-byte aligned byte buffer, freed on scope exit.
struct Buffer {
  void* p = nullptr;
  explicit Buffer(size_t bytes) {
    if (bytes) p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  }
  ~Buffer() { std::free(p); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
};

ffi::Error Shape5(ffi::Span<const int64_t> dims, const char* what, std::array<int64_t, 5>* out) {
  if (dims.size() != 5) {
    return ffi::Error::InvalidArgument(std::string("jaxsyn onednn conv3d: ") + what +
                                       " must be 5-D (NDHWC / DHWIO), got rank " +
                                       std::to_string(dims.size()));
  }
  for (int i = 0; i < 5; ++i) (*out)[i] = dims[i];
  return ffi::Error::Success();
}

ffi::Error Attr3(ffi::Span<const int64_t> v, const char* what, std::array<int64_t, 3>* out) {
  if (v.size() != 3) {
    return ffi::Error::InvalidArgument(std::string("jaxsyn onednn conv3d: attribute ") + what +
                                       " needs 3 values, got " + std::to_string(v.size()));
  }
  for (int i = 0; i < 3; ++i) (*out)[i] = v[i];
  return ffi::Error::Success();
}

ffi::Error DataType(ffi::DataType t, memory::data_type* out) {
  if (t == ffi::DataType::F32) {
    *out = memory::data_type::f32;
  } else if (t == ffi::DataType::BF16) {
    *out = memory::data_type::bf16;
  } else {
    return ffi::Error::InvalidArgument("jaxsyn onednn conv3d: only float32 and bfloat16");
  }
  return ffi::Error::Success();
}

// x, w, y are the NDHWC input, DHWIO weights and NDHWC output buffers; which of them are read and
// which written depends on the kind (fwd: y = x * w; bwd-data: x = dy * w^T; bwd-weights: w = ...).
ffi::Error Run(Kind kind, ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::AnyBuffer y,
               ffi::Span<const int64_t> stride, ffi::Span<const int64_t> lo,
               ffi::Span<const int64_t> hi, ffi::Span<const int64_t> dilation) {
  Key k;
  k.kind = kind;
  if (auto err = DataType(x.element_type(), &k.dtype); err.failure()) return err;
  if (w.element_type() != x.element_type() || y.element_type() != x.element_type()) {
    return ffi::Error::InvalidArgument("jaxsyn onednn conv3d: operands must share one dtype");
  }
  if (auto err = Shape5(x.dimensions(), "input", &k.x); err.failure()) return err;
  if (auto err = Shape5(w.dimensions(), "weights", &k.w); err.failure()) return err;
  if (auto err = Shape5(y.dimensions(), "output", &k.y); err.failure()) return err;
  if (auto err = Attr3(stride, "stride", &k.stride); err.failure()) return err;
  if (auto err = Attr3(lo, "padding_lo", &k.lo); err.failure()) return err;
  if (auto err = Attr3(hi, "padding_hi", &k.hi); err.failure()) return err;
  if (auto err = Attr3(dilation, "dilation", &k.dilation); err.failure()) return err;

  std::shared_ptr<Entry> e;
  try {
    e = Lookup(k);
  } catch (const dnnl::error& err) {
    std::ostringstream msg;
    msg << "jaxsyn onednn conv3d: no oneDNN primitive for x " << k.x[0] << "x" << k.x[1] << "x"
        << k.x[2] << "x" << k.x[3] << "x" << k.x[4] << ", w " << k.w[0] << "x" << k.w[1] << "x"
        << k.w[2] << "x" << k.w[3] << "x" << k.w[4] << ": " << err.what();
    return ffi::Error::Internal(msg.str());
  }
  auto& eng = Engine();
  try {
    std::lock_guard<std::mutex> lock(exec_mutex);
    dnnl::stream stream(eng);
    memory xm(e->x_md, eng, x.untyped_data());
    memory ym(e->y_md, eng, y.untyped_data());
    memory wplain(e->w_plain, eng, w.untyped_data());
    Buffer wbuf(e->reorder ? e->w_md.get_size() : 0);
    memory wm = e->reorder ? memory(e->w_md, eng, wbuf.p) : wplain;
    Buffer scratch(std::max(e->scratch, e->w_scratch));
    memory sm(dnnl::memory::desc({static_cast<int64_t>(std::max(e->scratch, e->w_scratch))},
                                 memory::data_type::u8, tag::a),
              eng, scratch.p);
    if (kind != Kind::kBackwardWeights && e->reorder) {
      e->w_reorder.execute(stream, {{DNNL_ARG_FROM, wplain},
                                    {DNNL_ARG_TO, wm},
                                    {DNNL_ARG_SCRATCHPAD, sm}});
    }
    if (kind == Kind::kForward) {
      e->conv.execute(stream, {{DNNL_ARG_SRC, xm},
                               {DNNL_ARG_WEIGHTS, wm},
                               {DNNL_ARG_DST, ym},
                               {DNNL_ARG_SCRATCHPAD, sm}});
    } else if (kind == Kind::kBackwardData) {
      e->conv.execute(stream, {{DNNL_ARG_DIFF_DST, ym},
                               {DNNL_ARG_WEIGHTS, wm},
                               {DNNL_ARG_DIFF_SRC, xm},
                               {DNNL_ARG_SCRATCHPAD, sm}});
    } else {
      e->conv.execute(stream, {{DNNL_ARG_SRC, xm},
                               {DNNL_ARG_DIFF_DST, ym},
                               {DNNL_ARG_DIFF_WEIGHTS, wm},
                               {DNNL_ARG_SCRATCHPAD, sm}});
      if (e->reorder) {
        e->w_reorder.execute(stream, {{DNNL_ARG_FROM, wm},
                                      {DNNL_ARG_TO, wplain},
                                      {DNNL_ARG_SCRATCHPAD, sm}});
      }
    }
    stream.wait();
  } catch (const dnnl::error& err) {
    return ffi::Error::Internal(std::string("jaxsyn onednn conv3d: ") + err.what());
  }
  return ffi::Error::Success();
}

ffi::Error Forward(ffi::AnyBuffer x, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> y,
                   ffi::Span<const int64_t> stride, ffi::Span<const int64_t> lo,
                   ffi::Span<const int64_t> hi, ffi::Span<const int64_t> dilation) {
  return Run(Kind::kForward, x, w, *y, stride, lo, hi, dilation);
}

ffi::Error BackwardData(ffi::AnyBuffer dy, ffi::AnyBuffer w, ffi::Result<ffi::AnyBuffer> dx,
                        ffi::Span<const int64_t> stride, ffi::Span<const int64_t> lo,
                        ffi::Span<const int64_t> hi, ffi::Span<const int64_t> dilation) {
  return Run(Kind::kBackwardData, *dx, w, dy, stride, lo, hi, dilation);
}

ffi::Error BackwardWeights(ffi::AnyBuffer x, ffi::AnyBuffer dy, ffi::Result<ffi::AnyBuffer> dw,
                           ffi::Span<const int64_t> stride, ffi::Span<const int64_t> lo,
                           ffi::Span<const int64_t> hi, ffi::Span<const int64_t> dilation) {
  return Run(Kind::kBackwardWeights, x, *dw, dy, stride, lo, hi, dilation);
}

}  // namespace

#define JAXSYN_CONV_BINDING                          \
  ffi::Ffi::Bind()                                  \
      .Arg<ffi::AnyBuffer>()                        \
      .Arg<ffi::AnyBuffer>()                        \
      .Ret<ffi::AnyBuffer>()                        \
      .Attr<ffi::Span<const int64_t>>("stride")     \
      .Attr<ffi::Span<const int64_t>>("padding_lo") \
      .Attr<ffi::Span<const int64_t>>("padding_hi") \
      .Attr<ffi::Span<const int64_t>>("dilation")

XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxsynConv3dFwd, Forward, JAXSYN_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxsynConv3dBwdData, BackwardData, JAXSYN_CONV_BINDING);
XLA_FFI_DEFINE_HANDLER_SYMBOL(JaxsynConv3dBwdWeights, BackwardWeights,
                              JAXSYN_CONV_BINDING);

// ---- Python module: capsules for jax.ffi.register_ffi_target, plus version / ISA facts ----

namespace {

PyObject* Version(PyObject*, PyObject*) {
  const dnnl_version_t* v = dnnl::version();
  return PyUnicode_FromFormat("%d.%d.%d", v->major, v->minor, v->patch);
}

PyObject* Isa(PyObject*, PyObject*) {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx_fp16:
    case dnnl::cpu_isa::avx512_core_amx:
      return PyUnicode_FromString("avx512_core_amx");
    case dnnl::cpu_isa::avx512_core_fp16:
    case dnnl::cpu_isa::avx512_core_bf16:
      return PyUnicode_FromString("avx512_core_bf16");
    case dnnl::cpu_isa::avx512_core_vnni:
      return PyUnicode_FromString("avx512_core_vnni");
    case dnnl::cpu_isa::avx512_core:
      return PyUnicode_FromString("avx512_core");
    case dnnl::cpu_isa::avx2_vnni:
    case dnnl::cpu_isa::avx2_vnni_2:
      return PyUnicode_FromString("avx2_vnni");
    case dnnl::cpu_isa::avx2:
      return PyUnicode_FromString("avx2");
    case dnnl::cpu_isa::avx:
      return PyUnicode_FromString("avx");
    case dnnl::cpu_isa::sse41:
      return PyUnicode_FromString("sse41");
    default:
      return PyUnicode_FromString("other");
  }
}

PyObject* ClearCache(PyObject*, PyObject*) {
  std::lock_guard<std::mutex> lock(cache_mutex);
  const size_t n = Cache().size();
  Cache().clear();
  return PyLong_FromSize_t(n);
}

PyMethodDef methods[] = {
    {"version", Version, METH_NOARGS, "oneDNN version string."},
    {"isa", Isa, METH_NOARGS, "Instruction set oneDNN dispatches to on this CPU."},
    {"clear_cache", ClearCache, METH_NOARGS, "Drop cached primitives; returns how many."},
    {nullptr, nullptr, 0, nullptr}};

PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_onednn",
                          "oneDNN 3D convolution FFI handlers for XLA:CPU.", -1, methods};

}  // namespace

PyMODINIT_FUNC PyInit__onednn(void) {
  PyObject* m = PyModule_Create(&module_def);
  if (m == nullptr) return nullptr;
  PyObject* targets = PyDict_New();
  const std::pair<const char*, void*> handlers[] = {
      {"conv3d_fwd", reinterpret_cast<void*>(JaxsynConv3dFwd)},
      {"conv3d_bwd_data", reinterpret_cast<void*>(JaxsynConv3dBwdData)},
      {"conv3d_bwd_weights", reinterpret_cast<void*>(JaxsynConv3dBwdWeights)},
  };
  for (const auto& [name, fn] : handlers) {
    PyObject* capsule = PyCapsule_New(fn, nullptr, nullptr);
    if (capsule == nullptr || PyDict_SetItemString(targets, name, capsule) < 0) {
      Py_XDECREF(capsule);
      Py_DECREF(targets);
      Py_DECREF(m);
      return nullptr;
    }
    Py_DECREF(capsule);
  }
  if (PyModule_AddObject(m, "targets", targets) < 0) {
    Py_DECREF(targets);
    Py_DECREF(m);
    return nullptr;
  }
  return m;
}
