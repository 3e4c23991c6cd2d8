// 2-D convolution through oneDNN, as XLA FFI handlers for the CPU.
//
// Built and registered by kws_jax/models/onednn.py, which gives the layouts:
// x [N, H, W, C] (NHWC), kernel [KH, KW, C, O] (HWIO), bias [O],
// y [N, OH, OW, O]; strides and paddings as attributes. Three handlers:
//   kws_onednn_conv_forward          x, kernel, bias -> y
//   kws_onednn_conv_backward_data    dy, kernel -> dx
//   kws_onednn_conv_backward_weights x, dy -> dkernel, dbias
// The forward pass reads and writes the plain layouts directly (fastest
// here); the backward passes let oneDNN choose its blocked layouts and
// reorder into and out of them, through buffers kept per thread, argument
// and layout (up to 64 a thread, the least recently used dropped first),
// so that a step does not fault in fresh pages for them.
#include <algorithm>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using dnnl::memory;
using Tag = dnnl::memory::format_tag;

namespace {

dnnl::engine& Engine() {
  static dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

// oneDNN's logical dimensions (N, C, H, W / O, I, KH, KW) of one call.
struct Problem {
  memory::dims src, weights, bias, dst, strides, pad_before, pad_after;
};

struct Geometry {
  int64_t stride_h, stride_w, pad_top, pad_bottom, pad_left, pad_right;
};

// Checks the shapes of one call (and of its bias, where it has one) and
// fills `p`.
ffi::Error Describe(ffi::Span<const int64_t> x, ffi::Span<const int64_t> w,
                    std::optional<ffi::Span<const int64_t>> b,
                    ffi::Span<const int64_t> y, const Geometry& g,
                    Problem* p) {
  if (x.size() != 4 || w.size() != 4 || y.size() != 4) {
    return ffi::Error::InvalidArgument(
        "kws_onednn_conv: expected [N, H, W, C] maps and an [KH, KW, C, O] "
        "kernel");
  }
  if (g.stride_h < 1 || g.stride_w < 1 || g.pad_top < 0 ||
      g.pad_bottom < 0 || g.pad_left < 0 || g.pad_right < 0) {
    return ffi::Error::InvalidArgument(
        "kws_onednn_conv: strides must be at least 1 and paddings at least "
        "0");
  }
  const int64_t oh =
      (x[1] + g.pad_top + g.pad_bottom - w[0]) / g.stride_h + 1;
  const int64_t ow =
      (x[2] + g.pad_left + g.pad_right - w[1]) / g.stride_w + 1;
  if (w[2] != x[3] || y[0] != x[0] || y[1] != oh || y[2] != ow ||
      y[3] != w[3] || oh < 1 || ow < 1) {
    return ffi::Error::InvalidArgument(
        "kws_onednn_conv: the shapes of input, kernel and output disagree");
  }
  if (b && (b->size() != 1 || (*b)[0] != w[3])) {
    return ffi::Error::InvalidArgument(
        "kws_onednn_conv: the bias needs one value per output channel");
  }
  *p = Problem{{x[0], x[3], x[1], x[2]},
               {w[3], w[2], w[0], w[1]},
               {w[3]},
               {y[0], y[3], y[1], y[2]},
               {g.stride_h, g.stride_w},
               {g.pad_top, g.pad_left},
               {g.pad_bottom, g.pad_right}};
  return ffi::Error::Success();
}

memory::desc Desc(const memory::dims& dims, Tag tag) {
  return memory::desc(dims, memory::data_type::f32, tag);
}

dnnl::convolution_forward::primitive_desc Forward(const Problem& p, Tag src,
                                                  Tag weights, Tag dst) {
  return dnnl::convolution_forward::primitive_desc(
      Engine(), dnnl::prop_kind::forward_training,
      dnnl::algorithm::convolution_direct, Desc(p.src, src),
      Desc(p.weights, weights), Desc(p.bias, Tag::a), Desc(p.dst, dst),
      p.strides, p.pad_before, p.pad_after);
}

// A buffer in oneDNN's chosen layout for argument `id` of a primitive,
// kept for the next call of this thread with the same argument and layout.
// (Keyed by both: two arguments of one call may have the same layout, e.g.
// the input and output gradients of a 64 -> 64 'SAME' convolution, and
// must not share a buffer.)
memory Scratch(int id, const memory::desc& desc) {
  struct Kept {
    int id;
    memory::desc desc;
    memory buffer;
  };
  thread_local std::vector<Kept> kept;  // Most recently used last.
  for (auto k = kept.begin(); k != kept.end(); ++k) {
    if (k->id == id && k->desc == desc) {
      std::rotate(k, k + 1, kept.end());
      return kept.back().buffer;
    }
  }
  if (kept.size() >= 64) kept.erase(kept.begin());
  kept.push_back({id, desc, memory(desc, Engine())});
  return kept.back().buffer;
}

// One argument: the buffer XLA gave (in its plain layout `given`) and the
// layout the primitive wants.
struct Arg {
  int id;
  memory::desc wanted;
  memory::desc given;
  void* data;
  bool output;
};

void Execute(const dnnl::primitive& primitive, const std::vector<Arg>& args) {
  dnnl::stream stream(Engine());
  std::unordered_map<int, memory> bound;
  std::vector<std::pair<memory, memory>> to_copy_back;
  for (const Arg& arg : args) {
    memory given(arg.given, Engine(), arg.data);
    if (arg.wanted == arg.given) {
      bound.emplace(arg.id, given);
      continue;
    }
    memory wanted = Scratch(arg.id, arg.wanted);
    if (arg.output) {
      to_copy_back.emplace_back(wanted, given);
    } else {
      dnnl::reorder(given, wanted).execute(stream, given, wanted);
    }
    bound.emplace(arg.id, wanted);
  }
  primitive.execute(stream, bound);
  for (auto& [from, to] : to_copy_back) {
    dnnl::reorder(from, to).execute(stream, from, to);
  }
  stream.wait();
}

// Runs `body`, turning a oneDNN (or any C++) exception into an XLA error.
template <typename Body>
ffi::Error Guarded(Body body) {
  try {
    body();
    return ffi::Error::Success();
  } catch (const dnnl::error& e) {
    return ffi::Error::Internal(std::string("kws_onednn_conv: oneDNN: ") +
                                e.what());
  } catch (const std::exception& e) {
    return ffi::Error::Internal(std::string("kws_onednn_conv: ") + e.what());
  }
}

ffi::Error ForwardImpl(ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                       ffi::Buffer<ffi::F32> b, ffi::ResultBuffer<ffi::F32> y,
                       Geometry g) {
  Problem p;
  ffi::Error error = Describe(x.dimensions(), w.dimensions(), b.dimensions(),
                              y->dimensions(), g, &p);
  if (error.failure()) return error;
  return Guarded([&] {
    auto pd = Forward(p, Tag::nhwc, Tag::hwio, Tag::nhwc);
    Execute(dnnl::convolution_forward(pd),
            {{DNNL_ARG_SRC, pd.src_desc(), Desc(p.src, Tag::nhwc),
              x.typed_data(), false},
             {DNNL_ARG_WEIGHTS, pd.weights_desc(), Desc(p.weights, Tag::hwio),
              w.typed_data(), false},
             {DNNL_ARG_BIAS, pd.bias_desc(), Desc(p.bias, Tag::a),
              b.typed_data(), false},
             {DNNL_ARG_DST, pd.dst_desc(), Desc(p.dst, Tag::nhwc),
              y->typed_data(), true}});
  });
}

ffi::Error BackwardDataImpl(ffi::Buffer<ffi::F32> dy, ffi::Buffer<ffi::F32> w,
                            ffi::ResultBuffer<ffi::F32> dx, Geometry g) {
  Problem p;
  ffi::Error error = Describe(dx->dimensions(), w.dimensions(), std::nullopt,
                              dy.dimensions(), g, &p);
  if (error.failure()) return error;
  return Guarded([&] {
    auto hint = Forward(p, Tag::any, Tag::any, Tag::any);
    dnnl::convolution_backward_data::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, Desc(p.src, Tag::any),
        Desc(p.weights, Tag::any), Desc(p.dst, Tag::any), p.strides,
        p.pad_before, p.pad_after, hint);
    Execute(dnnl::convolution_backward_data(pd),
            {{DNNL_ARG_DIFF_DST, pd.diff_dst_desc(), Desc(p.dst, Tag::nhwc),
              dy.typed_data(), false},
             {DNNL_ARG_WEIGHTS, pd.weights_desc(), Desc(p.weights, Tag::hwio),
              w.typed_data(), false},
             {DNNL_ARG_DIFF_SRC, pd.diff_src_desc(), Desc(p.src, Tag::nhwc),
              dx->typed_data(), true}});
  });
}

ffi::Error BackwardWeightsImpl(ffi::Buffer<ffi::F32> x,
                               ffi::Buffer<ffi::F32> dy,
                               ffi::ResultBuffer<ffi::F32> dw,
                               ffi::ResultBuffer<ffi::F32> db, Geometry g) {
  Problem p;
  ffi::Error error = Describe(x.dimensions(), dw->dimensions(),
                              db->dimensions(), dy.dimensions(), g, &p);
  if (error.failure()) return error;
  return Guarded([&] {
    auto hint = Forward(p, Tag::any, Tag::any, Tag::any);
    dnnl::convolution_backward_weights::primitive_desc pd(
        Engine(), dnnl::algorithm::convolution_direct, Desc(p.src, Tag::any),
        Desc(p.weights, Tag::any), Desc(p.bias, Tag::a), Desc(p.dst, Tag::any),
        p.strides, p.pad_before, p.pad_after, hint);
    Execute(dnnl::convolution_backward_weights(pd),
            {{DNNL_ARG_SRC, pd.src_desc(), Desc(p.src, Tag::nhwc),
              x.typed_data(), false},
             {DNNL_ARG_DIFF_DST, pd.diff_dst_desc(), Desc(p.dst, Tag::nhwc),
              dy.typed_data(), false},
             {DNNL_ARG_DIFF_WEIGHTS, pd.diff_weights_desc(),
              Desc(p.weights, Tag::hwio), dw->typed_data(), true},
             {DNNL_ARG_DIFF_BIAS, pd.diff_bias_desc(), Desc(p.bias, Tag::a),
              db->typed_data(), true}});
  });
}

}  // namespace

// The six attributes, by name, as one Geometry.
XLA_FFI_REGISTER_STRUCT_ATTR_DECODING(
    Geometry, xla::ffi::StructMember<int64_t>("stride_h"),
    xla::ffi::StructMember<int64_t>("stride_w"),
    xla::ffi::StructMember<int64_t>("pad_top"),
    xla::ffi::StructMember<int64_t>("pad_bottom"),
    xla::ffi::StructMember<int64_t>("pad_left"),
    xla::ffi::StructMember<int64_t>("pad_right"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(kws_onednn_conv_forward, ForwardImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attrs<Geometry>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(kws_onednn_conv_backward_data, BackwardDataImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attrs<Geometry>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(kws_onednn_conv_backward_weights,
                              BackwardWeightsImpl,
                              ffi::Ffi::Bind()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Attrs<Geometry>());
