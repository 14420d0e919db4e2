// `np.save(path, {"keys": a, "attn_highres": b})` files: an .npy holding one
// pickled Python object, here a dict of numpy arrays. This is how the
// official CLIP-ES saves its CAMs (generate_cams_voc12.py / _coco14.py) and
// what its eval_cam.py and eval_cam_with_crf.py read back with
// np.load(allow_pickle=True).item().
//
// Reading runs io/pickle_machine (plain values, nothing called) and then
// accepts only the three globals numpy's ndarray and dtype pickling use
// (numpy[._]core.multiarray._reconstruct, numpy.ndarray, numpy.dtype). Writing reproduces numpy 1.24's
// np.save byte for byte (protocol 3, the same memo indices), so the official
// scripts read our files unchanged. No torch here: fuzzed on its own.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace clipes {

// One numpy array of the dict. dtype is numpy's kind+size code ("f2", "f4",
// "f8", "i8", "i4", "u1", "b1"); byte order '<', '>' or '|' (byte-sized).
struct PickledArray {
  std::string dtype;
  char byte_order = '<';
  std::vector<int64_t> shape;
  std::string data;  // C order, prod(shape) * item size bytes (checked)
};

using PickledArrays = std::vector<std::pair<std::string, PickledArray>>;  // insertion order kept

// Parses the whole file's bytes: the .npy header must say '|O', shape (),
// and the pickle a dict of str → ndarray. Fortran-ordered arrays are refused.
// Throws clipes::Error "<name>: <problem>" on anything else.
PickledArrays parse_npy_pickled_dict(const std::string& bytes, const std::string& name);

// The bytes np.save writes for a dict with these entries, in this order.
std::string encode_npy_pickled_dict(const PickledArrays& arrays);

}  // namespace clipes
