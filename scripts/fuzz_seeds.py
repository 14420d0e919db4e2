#!/usr/bin/env python3
"""Seed corpora for the fuzz harnesses (scripts/fuzz.sh calls this).

usage: fuzz_seeds.py OUT_DIR SHARED_DIR [HARNESS...]   (default: all)

Writes OUT_DIR/<harness>/<n> files: small self-made inputs of every format,
plus, when SHARED_DIR (../shared) is there, inputs derived from its fixtures
at run time (prompts, the head of the vocabulary, coco-tiny polygons and
RLEs, small .npy files). Nothing from ../shared is ever stored in the repo.
"""
import gzip
import io
import json
import os
import struct
import sys
import zipfile
import zlib


def writer(out_dir, harness):
    folder = os.path.join(out_dir, harness)
    os.makedirs(folder, exist_ok=True)
    count = [0]

    def put(data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        with open(os.path.join(folder, "%03d" % count[0]), "wb") as f:
            f.write(data)
        count[0] += 1

    return put


def bpe_seeds(put, shared):
    for text in ["a photo of a cat.", "A PHOTO OF A {}.", "&amp; &#x41;&#65;&lt;tag&gt; &eacute;&nbsp;&apos;",
                 "Ünïcödé ÄÖÜ straße İstanbul", "<|startoftext|>hello<|endoftext|>", "don't it's we're I'll",
                 "123 4567 8.9", "\u00a0\u2003tabs\tand\nnewlines\r\n", "日本語のテキスト 中文", "emoji 🐶🐱👍🏽",
                 "\xff\xfe broken utf8 \xc3", "&#0; &#x110000; &#xD800; &#99999999999;"]:
        put(text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text)
    put(b"bad \xff\xfe utf-8 \xc3 \xed\xa0\x80")
    tokens = os.path.join(shared, "fixtures/clip/tokens.json")
    if os.path.exists(tokens):
        for text in list(json.load(open(tokens, encoding="utf-8")))[:40]:
            put(text)


def vocab_seeds(put, shared):
    put("#version: 0.2\nh e\nhe l\nhel lo</w>\n\x00hello hel helo")
    put("#version: 0.2\na b\r\n\r\nab c</w>\n")
    put("\"bpe_simple_vocab_16e6.txt#version: 0.2\nt h\nth e</w>\n\x00the them")
    put("#version: 0.2\n")
    vocab = os.path.join(shared, "fixtures/clip/bpe_simple_vocab_16e6.txt.gz")
    if os.path.exists(vocab):
        lines = gzip.open(vocab, "rt", encoding="utf-8").read().split("\n")
        put("\n".join(lines[:200]) + "\n\x00a photo of the dog")
        put("\n".join(lines[:1000]) + "\n")


def labels_seeds(put, shared):
    bom = "\ufeff"
    for mode, text in [
        (0, "image,labels\na.jpg,cat;dog\n\"b, c.jpg\",\"bird\",cat\n# comment\n\nd\n"),
        (0, bom + "Image,Labels\r\n2007_000032.jpg,aeroplane;person\r\n"),
        (0, "x,y,z\n"), (2, "filename;labels\n\"unterminated,quote\n"),
        (1, '{"a.jpg": ["cat", "dog"], "b": "bird", "c": []}'),
        (1, bom + '{"x": ["cat", " cat ", ""]}'), (2, ' {"k": [1]}'), (3, '{"a": {"b": 1}}'),
        (3, '[1, 2]'), (1, '{"a": "\\u00e9\\ud83d\\ude00"}'),
    ]:
        put(bytes([mode]) + text.encode("utf-8"))


def rle_string(counts):
    """pycocotools' rleToString."""
    out = []
    for i, c in enumerate(counts):
        x = c - counts[i - 2] if i > 2 else c
        more = True
        while more:
            ch = x & 0x1F
            x >>= 5
            more = (x != -1) if (ch & 0x10) else (x != 0)
            if more:
                ch |= 0x20
            out.append(chr(ch + 48))
    return "".join(out)


def coco_seeds(put, shared):
    def head(mode, h, w):
        return struct.pack("<BHH", mode, h, w)

    put(head(0, 4, 4) + rle_string([3, 5, 2, 6]).encode())
    put(head(1, 4, 4) + struct.pack("<4I", 3, 5, 2, 6))
    put(head(2, 10, 10) + struct.pack("<8h", *[int(v * 8) for v in (1, 1, 8, 1, 8, 8, 1, 8)]))
    put(head(3, 10, 10) + struct.pack("<8d", 1.5, 1, 8, 1.25, 8, 8, 1, 8))
    put(head(2, 5, 7) + struct.pack("<2h", 8, 8))  # one point
    ann = os.path.join(shared, "data/coco-tiny/annotations/instances_val2017.json")
    if not os.path.exists(ann):
        return
    data = json.load(open(ann))
    sizes = {im["id"]: (im["height"], im["width"]) for im in data["images"]}
    polygons = rles = 0
    for a in data["annotations"]:
        h, w = sizes[a["image_id"]]
        seg = a["segmentation"]
        if isinstance(seg, list) and polygons < 30:
            poly = seg[0]
            if len(poly) <= 400:
                put(head(2, h, w) + struct.pack("<%dh" % len(poly), *[int(round(v * 8)) for v in poly]))
                polygons += 1
        elif isinstance(seg, dict) and rles < 6 and isinstance(seg["counts"], list):
            counts = seg["counts"]
            put(head(0, h, w) + rle_string(counts).encode())
            if len(counts) < 1000:
                put(head(1, h, w) + struct.pack("<%dI" % len(counts), *counts))
            rles += 1


def npy_bytes(header, data=b"", major=1):
    header = header + " " * ((64 - (len(header) + 11) % 64) % 64) + "\n"
    if major == 1:
        return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + data
    return b"\x93NUMPY" + bytes([major, 0]) + struct.pack("<I", len(header)) + header.encode() + data


def npy_seeds(put, shared):
    put(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", bytes(24)))
    put(npy_bytes("{'descr': '|u1', 'fortran_order': False, 'shape': (5,), }", bytes(5)))
    put(npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (), }", bytes(8), major=2))
    put(npy_bytes("{'descr': '|b1', 'fortran_order': True, 'shape': (0, 4), }", b"", major=3))
    put(npy_bytes("{\"descr\": \"<f8\", \"shape\": (1L, 2L), \"fortran_order\": False}", bytes(16)))
    # numpy-written CLIP-ES CAM dicts (pickled '|O' files), kept in the repository
    cams = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "clip_es_cams")
    for name in sorted(os.listdir(cams)) if os.path.isdir(cams) else []:
        if name.endswith(".npy"):
            put(open(os.path.join(cams, name), "rb").read())
    folder = os.path.join(shared, "fixtures/segment")
    if os.path.isdir(folder):
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if name.endswith(".npy") and os.path.getsize(path) <= 6000:
                put(open(path, "rb").read())


def safetensors_bytes(header, data=b""):
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + data


def safetensors_seeds(put, shared):
    put(safetensors_bytes({"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                           "__metadata__": {"format": "pt"}}, bytes(16)))
    put(safetensors_bytes({"w": {"dtype": "BF16", "shape": [3], "data_offsets": [0, 6]},
                           "b": {"dtype": "I64", "shape": [], "data_offsets": [6, 14]},
                           "e": {"dtype": "BOOL", "shape": [0, 7], "data_offsets": [14, 14]}}, bytes(14)))
    put(safetensors_bytes({"x": {"dtype": "U8", "shape": [4], "data_offsets": [0, 5]}}, bytes(5)))
    put(safetensors_bytes({}))


def zip_seeds(put, shared):
    for compression in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression) as z:
            z.writestr("archive/data.pkl", b"\x80\x02}q\x00." * 4)
            z.writestr("archive/data/0", bytes(range(64)))
            z.writestr("archive/version", b"3\n")
        put(buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        pass
    put(buf.getvalue())
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        with z.open("big/member", "w", force_zip64=True) as f:
            f.write(b"x" * 300)
    put(buf.getvalue())


def png_bytes(width, height, color_type, bit_depth, rows, palette=None, interlace=0, extra=b""):
    def chunk(kind, payload):
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0,
                                                             interlace))
    if palette is not None:
        out += chunk(b"PLTE", bytes(palette))
    out += extra
    raw = b"".join(b"\x00" + r for r in rows)
    return out + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def png_seeds(put, shared):
    pal = [c for i in range(256) for c in (i, 255 - i, (i * 7) % 256)]
    put(png_bytes(4, 3, 3, 8, [bytes([0, 1, 2, 255])] * 3, pal))
    put(png_bytes(5, 2, 0, 8, [bytes([0, 15, 20, 255, 7])] * 2))
    put(png_bytes(9, 2, 3, 1, [b"\xa5\x80"] * 2, pal[:6]))
    put(png_bytes(3, 3, 0, 2, [b"\x1b"] * 3))
    put(png_bytes(4, 1, 3, 4, [b"\x01\x23"], pal[:48], extra=b""))
    put(png_bytes(2, 2, 2, 8, [bytes(6)] * 2))      # RGB: refused
    put(png_bytes(2, 2, 0, 16, [bytes(4)] * 2))     # 16-bit: refused
    # Adam7 with a 1x1 image: one pass holds the only pixel.
    put(png_bytes(1, 1, 0, 8, [b"\x05"], interlace=1))
    put(png_bytes(1, 1, 3, 8, [b"\x00"], pal[:3], extra=struct.pack(">I", 1) + b"tRNS\x00" +
                  struct.pack(">I", zlib.crc32(b"tRNS\x00"))))


def class_file_seeds(put, shared):
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "prompts")
    for name in sorted(os.listdir(here)) if os.path.isdir(here) else []:
        if name.endswith(".json") and os.path.getsize(os.path.join(here, name)) <= 8192:
            put(open(os.path.join(here, name), "rb").read())
    put('{"classes": [{"name": "cat"}, {"name": "dog", "aliases": ["puppy"], "id": 12}]}')
    put('{"name": "x", "template": "a {}.", "box_threshold": 0.5, "background": ["sky", "grass"], '
        '"classes": [{"name": "motorcycle", "prompt": "motorbike,moto", "tag_name": "motorbike"}]}')
    put('{"classes": [{"name": "a"}, {"name": "A "}]}')


def torch_save_pickles():
    """Pickles laid out as torch.save writes them (protocol 2, storages by
    persistent id, tensors through torch._utils._rebuild_tensor_v2, state dicts
    as OrderedDicts), made with stand-in torch modules: no torch needed."""
    import collections
    import pickle
    import types
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        for kind in ("FloatStorage", "HalfStorage", "LongStorage"):
            setattr(torch, kind, type(kind, (), {"__module__": "torch"}))

        def _rebuild_tensor_v2(*args):
            raise RuntimeError("never called")
        _rebuild_tensor_v2.__module__ = "torch._utils"
        _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
        utils._rebuild_tensor_v2 = _rebuild_tensor_v2

        class Storage:
            def __init__(self, kind, key, location, numel):
                self.id = ("storage", getattr(torch, kind), key, location, numel)

        class Tensor:
            def __init__(self, storage, offset, size, stride):
                self.args = (storage, offset, size, stride, False, collections.OrderedDict())

            def __reduce_ex__(self, protocol):
                return (_rebuild_tensor_v2, self.args)

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                return obj.id if isinstance(obj, Storage) else None

        def dump(obj):
            out = io.BytesIO()
            Pickler(out, protocol=2).dump(obj)
            return out.getvalue()

        a = Storage("FloatStorage", "0", "cpu", 6)
        h = Storage("HalfStorage", "1", "cuda:0", 4)
        sd = collections.OrderedDict([("w", Tensor(a, 0, (2, 3), (3, 1))), ("w.t", Tensor(a, 0, (3, 2), (1, 3))),
                                      ("b", Tensor(h, 1, (3,), (1,))), ("s", Tensor(a, 5, (), ()))])
        yield dump(sd)
        yield dump({"epoch": 3, "state_dict": sd, "lr": 0.1, "hp": {"names": ["a", "b"]}})
        yield dump({"model": collections.OrderedDict([("module.x", Tensor(Storage("LongStorage", "2", "cpu", 1), 0, (1,), (1,)))])})
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def torch_save_seeds(put, shared):
    for data in torch_save_pickles():
        put(data)
    for rel in ("fixtures/segment/dinoiser-heads-tiny.pt", "fixtures/lseg/lseg_tiny.ckpt"):
        path = os.path.join(shared, rel)
        if os.path.isfile(path):
            with zipfile.ZipFile(path) as z:
                for name in z.namelist():
                    if name.endswith("/data.pkl"):
                        put(z.read(name)[:16384])


def main():
    out_dir, shared, only = sys.argv[1], sys.argv[2], sys.argv[3:]
    for harness, make in [("bpe", bpe_seeds), ("bpe_vocab", vocab_seeds), ("labels", labels_seeds),
                          ("coco_mask", coco_seeds), ("npy", npy_seeds), ("safetensors", safetensors_seeds),
                          ("zip", zip_seeds), ("label_png", png_seeds), ("class_file", class_file_seeds),
                          ("torch_save", torch_save_seeds)]:
        if not only or harness in only:
            make(writer(out_dir, harness), shared)


if __name__ == "__main__":
    main()
