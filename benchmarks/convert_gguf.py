"""Rewrite a GGUF with every tensor dequantised to F32 (or F16 for 2-D weights): same metadata,
same tensor names and layouts (Q/K stay in llama.cpp's permuted order). Benchmark helper only."""
import sys
import numpy as np
import gguf

src, dst, kind = sys.argv[1], sys.argv[2], sys.argv[3]
reader = gguf.GGUFReader(src)
arch = reader.fields["general.architecture"].contents()
writer = gguf.GGUFWriter(dst, arch)
skip = {"GGUF.version", "GGUF.tensor_count", "GGUF.kv_count", "general.architecture", "general.file_type"}
for name, field in reader.fields.items():
    if name in skip:
        continue
    value_type = field.types[0]
    value = field.contents()
    if value_type == gguf.GGUFValueType.ARRAY:
        writer.add_key_value(name, value, value_type, sub_type=field.types[-1])
    else:
        writer.add_key_value(name, value, value_type)
writer.add_file_type(gguf.LlamaFileType.ALL_F32 if kind == "F32" else gguf.LlamaFileType.MOSTLY_F16)
for tensor in reader.tensors:
    data = gguf.quants.dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
    data = data.reshape([int(d) for d in reversed(tensor.shape)])
    if kind == "F16" and data.ndim == 2:
        data = data.astype(np.float16)
    writer.add_tensor(tensor.name, data)
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
print(f"wrote {dst}", file=sys.stderr)
