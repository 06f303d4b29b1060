/* Reading a TT_* op's options (a flexbuffer map, schema/training_ops.json) in Init.
 *
 * Init cannot fail in TFLM, so a missing or mistyped option is remembered as the first bad
 * key and Prepare reports it; nothing reads a value the model did not give. */
#ifndef TT_TFLM_OPTIONS_H
#define TT_TFLM_OPTIONS_H

#include <stddef.h>
#include <stdint.h>

#include "flatbuffers/flexbuffers.h"

namespace tflite_train {
namespace tflm {

class Options {
 public:
  Options(const char *buffer, size_t length)
      : map_(length > 0 ? flexbuffers::GetRoot(reinterpret_cast<const uint8_t *>(buffer),
                                               length).AsMap()
                        : flexbuffers::Map::EmptyMap()) {}

  /* The first key that was missing or of the wrong type, or NULL. */
  const char *bad_key() const { return bad_key_; }

  /* Whether the map has `key` (for the options of one gradient mode only). */
  bool Has(const char *key) const { return !map_[key].IsNull(); }

  int32_t Int(const char *key) {
    flexbuffers::Reference r = map_[key];
    if (!r.IsInt() && !r.IsUInt() && !r.IsBool()) return Bad(key), 0;
    return r.AsInt32();
  }
  uint32_t UInt(const char *key) {
    flexbuffers::Reference r = map_[key];
    if (!r.IsInt() && !r.IsUInt()) return Bad(key), 0u;
    return static_cast<uint32_t>(r.AsInt64());
  }
  double Float(const char *key) {
    flexbuffers::Reference r = map_[key];
    if (!r.IsNumeric()) return Bad(key), 0.0;
    return r.AsDouble();
  }
  bool Bool(const char *key) {
    flexbuffers::Reference r = map_[key];
    if (!r.IsBool() && !r.IsInt() && !r.IsUInt()) return Bad(key), false;
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
  template <typename V>
  int32_t Copy(const char *key, const V &v, int32_t *out, int32_t capacity) {
    const int32_t n = static_cast<int32_t>(v.size());
    if (n > capacity) return Bad(key), 0;
    for (int32_t i = 0; i < n; ++i) {
      if (!v[i].IsInt() && !v[i].IsUInt()) return Bad(key), 0;
      out[i] = v[i].AsInt32();
    }
    return n;
  }
  void Bad(const char *key) {
    if (bad_key_ == nullptr) bad_key_ = key;
  }

  flexbuffers::Map map_;
  const char *bad_key_ = nullptr;
};

}  // namespace tflm
}  // namespace tflite_train

#endif  /* TT_TFLM_OPTIONS_H */
