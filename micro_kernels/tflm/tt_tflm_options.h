/* Reading a TT_* op's options (a flexbuffer map, schema/training_ops.json) in Init, and
 * again in Prepare or Invoke by ops that keep them in the model (flash) rather than in
 * TFLM's persistent memory.
 *
 * Init cannot fail in TFLM, so a missing, mistyped or out-of-range option is remembered as
 * the first bad key and Prepare reports it; nothing reads a value the model did not give.
 * The buffer comes from the model file: it is verified (every offset and length inside
 * it, byte widths and types valid, keys terminated) before anything is read, and a buffer
 * that fails, or whose root is not a map, reads as a map without keys. */
#ifndef TT_TFLM_OPTIONS_H
#define TT_TFLM_OPTIONS_H

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "flatbuffers/flexbuffers.h"
#include "tt_tflm_compat.h"

namespace tflite_train {
namespace tflm {

class Options {
 public:
  Options(const char *buffer, size_t length) : map_(Root(buffer, length, &bad_key_)) {}
  /* The options of a node, read again after Init (the model's bytes, verified by Init and
   * unchanged since: not verified again). */
  explicit Options(const TfLiteNode *node)
      : map_(Trusted(static_cast<const char *>(node->custom_initial_data),
                     static_cast<size_t>(node->custom_initial_data_size))) {}

  /* The first key that was missing or of the wrong type, or NULL. */
  const char *bad_key() const { return bad_key_; }

  /* Whether the map has `key` (for the options of one gradient mode only). */
  bool Has(const char *key) const { return !map_[key].IsNull(); }

  /* An int (or bool) that fits int32_t. */
  int32_t Int(const char *key) {
    flexbuffers::Reference r = map_[key];
    if (r.IsBool()) return r.AsBool() ? 1 : 0;
    if (!InRange(r, INT32_MIN, INT32_MAX)) return Bad(key), 0;
    return static_cast<int32_t>(r.AsInt64());
  }
  uint32_t UInt(const char *key) {
    flexbuffers::Reference r = map_[key];
    if (!InRange(r, 0, UINT32_MAX)) return Bad(key), 0u;
    return static_cast<uint32_t>(r.AsInt64());
  }
  /* A number finite as float32: the kernels hold float options as float, and a double
   * beyond FLT_MAX converted to float is undefined in C++. */
  double Float(const char *key) {
    flexbuffers::Reference r = map_[key];
    if (!r.IsNumeric() || !(fabs(r.AsDouble()) <= FLT_MAX)) return Bad(key), 0.0;
    return r.AsDouble();
  }
  bool Bool(const char *key) {
    flexbuffers::Reference r = map_[key];
    if (!r.IsBool() && !InRange(r, 0, 1)) return Bad(key), false;
    return r.AsBool();
  }
  /* An int vector of at most `capacity` entries into `out`; returns its length. */
  int32_t Ints(const char *key, int32_t *out, int32_t capacity) {
    flexbuffers::Reference r = map_[key];
    /* Python's flexbuffers writes a list as an untyped vector; accept typed ones too. */
    if (r.IsTypedVector()) return Copy(key, r.AsTypedVector(), out, capacity);
    if (r.IsVector()) return Copy(key, r.AsVector(), out, capacity);
    return Bad(key), 0;
  }

 private:
  static flexbuffers::Map Trusted(const char *buffer, size_t length) {
    if (buffer == nullptr || length == 0) return flexbuffers::Map::EmptyMap();
    flexbuffers::Reference root =
        flexbuffers::GetRoot(reinterpret_cast<const uint8_t *>(buffer), length);
    return root.IsMap() ? root.AsMap() : flexbuffers::Map::EmptyMap();
  }
  static flexbuffers::Map Root(const char *buffer, size_t length, const char **bad_key) {
    const uint8_t *bytes = reinterpret_cast<const uint8_t *>(buffer);
    if (length == 0) return flexbuffers::Map::EmptyMap();
    if (buffer == nullptr || !flexbuffers::VerifyBuffer(bytes, length)) {
      *bad_key = "(options: not a valid flexbuffer)";
      return flexbuffers::Map::EmptyMap();
    }
    flexbuffers::Reference root = flexbuffers::GetRoot(bytes, length);
    if (!root.IsMap()) {
      *bad_key = "(options: not a flexbuffer map)";
      return flexbuffers::Map::EmptyMap();
    }
    return root.AsMap();
  }
  /* An int or uint within [lo, hi]. */
  static bool InRange(const flexbuffers::Reference &r, int64_t lo, int64_t hi) {
    if (r.IsInt()) return r.AsInt64() >= lo && r.AsInt64() <= hi;
    if (r.IsUInt()) {
      const uint64_t v = r.AsUInt64();
      return v <= static_cast<uint64_t>(hi) && (lo <= 0 || v >= static_cast<uint64_t>(lo));
    }
    return false;
  }
  template <typename V>
  int32_t Copy(const char *key, const V &v, int32_t *out, int32_t capacity) {
    if (v.size() > static_cast<size_t>(capacity)) return Bad(key), 0;
    const int32_t n = static_cast<int32_t>(v.size());
    for (int32_t i = 0; i < n; ++i) {
      if (!InRange(v[i], INT32_MIN, INT32_MAX)) return Bad(key), 0;
      out[i] = v[i].AsInt32();
    }
    return n;
  }
  void Bad(const char *key) {
    if (bad_key_ == nullptr) bad_key_ = key;
  }

  const char *bad_key_ = nullptr;     /* declared first: Root() may set it */
  flexbuffers::Map map_;
};

}  // namespace tflm
}  // namespace tflite_train

#endif  /* TT_TFLM_OPTIONS_H */
