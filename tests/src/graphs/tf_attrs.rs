//! Attributes of the generated TensorFlow nodes.

use super::tf::{
    tf_bool_attr, tf_int_attr, tf_shape, tf_str_attr, tf_type, tf_type_attr, tf_type_list,
};
use super::*;

/// The attributes `op` needs (with small values), sometimes one missing or one extra.
pub(super) fn tf_attrs(rng: &mut Rng, op: &str, file_stream: &mut bool) -> Vec<(&'static str, Pb)> {
    let t = || ("T", tf_type_attr(tf_type::FLOAT));
    let int32 = tf_type_attr(tf_type::INT32);
    let mut attrs: Vec<(&'static str, Pb)> = match op {
        "Reshape" => vec![t(), ("Tshape", int32)],
        "Sum" | "Mean" => vec![
            t(),
            ("Tidx", int32),
            ("keep_dims", tf_bool_attr(rng.chance(50))),
        ],
        "ConcatV2" => vec![t(), ("N", tf_int_attr(2)), ("Tidx", int32)],
        "Pack" => vec![
            t(),
            ("N", tf_int_attr(2)),
            ("axis", tf_int_attr(rng.below(2) as i64)),
        ],
        "Shape" | "Size" => vec![t(), ("out_type", int32)],
        "Fill" => vec![t(), ("index_type", int32)],
        "Tile" => vec![t(), ("Tmultiples", int32)],
        "ExpandDims" => vec![t(), ("Tdim", int32)],
        "Transpose" => vec![t(), ("Tperm", int32)],
        "Squeeze" => vec![t(), ("squeeze_dims", Pb::default().msg(1, Pb::default()))],
        "Range" => vec![("Tidx", int32)],
        "Slice" | "Pad" | "MirrorPad" => vec![
            t(),
            ("Index", int32.clone()),
            ("Tpaddings", int32.clone()),
            ("mode", tf_str_attr(one(rng, &["REFLECT", "SYMMETRIC"]))),
        ],
        "StridedSlice" => vec![
            t(),
            ("Index", int32),
            ("begin_mask", tf_int_attr(rng.below(4) as i64)),
            ("end_mask", tf_int_attr(rng.below(4) as i64)),
            ("ellipsis_mask", tf_int_attr(rng.below(3) as i64)),
            ("new_axis_mask", tf_int_attr(rng.below(3) as i64)),
            ("shrink_axis_mask", tf_int_attr(rng.below(3) as i64)),
        ],
        "BroadcastTo" | "ReverseV2" | "Max" | "Prod" | "Cumsum" => vec![
            t(),
            ("Tidx", int32),
            ("keep_dims", tf_bool_attr(rng.chance(50))),
        ],
        "GatherV2" => vec![
            ("Tparams", tf_type_attr(tf_type::FLOAT)),
            ("Tindices", int32.clone()),
            ("Taxis", int32),
            ("batch_dims", tf_int_attr(rng.below(3) as i64 - 1)),
        ],
        "Split" => vec![t(), ("num_split", tf_int_attr(1 + rng.below(3) as i64))],
        "ArgMax" => vec![t(), ("Tidx", int32.clone()), ("output_type", int32)],
        "TopKV2" => vec![t(), ("sorted", tf_bool_attr(true))],
        "OneHot" => vec![
            t(),
            ("TI", int32),
            ("axis", tf_int_attr(rng.below(3) as i64 - 1)),
        ],
        "Unpack" => vec![
            t(),
            ("num", tf_int_attr(rng.below(4) as i64)),
            ("axis", tf_int_attr(rng.below(3) as i64 - 1)),
        ],
        "DepthToSpace" => vec![t(), ("block_size", tf_int_attr(rng.below(3) as i64))],
        "Conv2D" => vec![
            t(),
            (
                "strides",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 1, 1, 1])),
            ),
            ("padding", tf_str_attr(one(rng, &["SAME", "VALID"]))),
        ],
        "MaxPool" => vec![
            t(),
            (
                "ksize",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 2, 2, 1])),
            ),
            (
                "strides",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 1, 1, 1])),
            ),
            ("padding", tf_str_attr("VALID")),
        ],
        "ScatterNd" => vec![t(), ("Tindices", int32)],
        "StringToNumber" => vec![("out_type", tf_type_attr(tf_type::FLOAT))],
        "DecodeRaw" => vec![
            ("out_type", tf_type_attr(tf_type::FLOAT)),
            ("little_endian", tf_bool_attr(true)),
        ],
        "Bitcast" => vec![
            t(),
            (
                "type",
                tf_type_attr(one_i64(rng, &[tf_type::INT32, tf_type::DOUBLE, 4])),
            ),
        ],
        "BatchMatMulV2" => vec![t(), ("adj_x", tf_bool_attr(rng.chance(30)))],
        "Unique" => vec![t(), ("out_idx", int32)],
        "SegmentSum" | "UnsortedSegmentSum" => {
            vec![t(), ("Tindices", int32.clone()), ("Tnumsegments", int32)]
        }
        "Bincount" => vec![t()],
        "SparseToDense" => vec![
            t(),
            ("Tindices", int32),
            ("validate_indices", tf_bool_attr(rng.chance(50))),
        ],
        "Einsum" => vec![
            t(),
            ("N", tf_int_attr(2)),
            (
                "equation",
                tf_str_attr(one(
                    rng,
                    &["i,i->i", "ij,jk->ik", "...,...->...", "ii->i", "a"],
                )),
            ),
        ],
        "InTopKV2" => vec![t()],
        "ResizeNearestNeighbor" => vec![t(), ("align_corners", tf_bool_attr(rng.chance(50)))],
        "SpaceToBatchND" => vec![t(), ("Tblock_shape", int32.clone()), ("Tpaddings", int32)],
        "AvgPool" => vec![
            t(),
            (
                "ksize",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 2, 2, 1])),
            ),
            (
                "strides",
                Pb::default().msg(1, Pb::default().packed_ints(3, &[1, 1, 1, 1])),
            ),
            ("padding", tf_str_attr("VALID")),
        ],
        "LRN" => vec![t(), ("depth_radius", tf_int_attr(rng.below(4) as i64))],
        "FFT" => vec![("Tcomplex", tf_type_attr(8))],
        "TensorScatterUpdate" => vec![t(), ("Tindices", int32)],
        "Cast" => vec![
            ("SrcT", tf_type_attr(tf_type::FLOAT)),
            (
                "DstT",
                tf_type_attr(*rng.pick(&[
                    tf_type::FLOAT,
                    tf_type::INT32,
                    tf_type::INT64,
                    tf_type::DOUBLE,
                    tf_type::BOOL,
                    tf_type::STRING,
                ])),
            ),
            ("Truncate", tf_bool_attr(false)),
        ],
        "MatMul" => vec![
            t(),
            ("transpose_a", tf_bool_attr(rng.chance(30))),
            ("transpose_b", tf_bool_attr(rng.chance(30))),
        ],
        "BiasAdd" => vec![t(), ("data_format", tf_str_attr("NHWC"))],
        "AsString" => vec![
            t(),
            ("precision", tf_int_attr(-1)),
            ("scientific", tf_bool_attr(false)),
            ("shortest", tf_bool_attr(false)),
            ("width", tf_int_attr(-1)),
            ("fill", tf_str_attr("")),
        ],
        "StringJoin" => vec![("N", tf_int_attr(2)), ("separator", tf_str_attr("/"))],
        "ReduceJoin" => vec![
            ("keep_dims", tf_bool_attr(false)),
            ("separator", tf_str_attr("")),
        ],
        "RegexReplace" => vec![("replace_global", tf_bool_attr(true))],
        "StringSplit" => vec![("skip_empty", tf_bool_attr(true))],
        "StringLength" => vec![("unit", tf_str_attr("BYTE"))],
        "Substr" => vec![("T", int32), ("unit", tf_str_attr("BYTE"))],
        "PrintV2" => {
            let stream = if rng.chance(30) {
                *file_stream = true;
                format!("file://{PRINTED}")
            } else {
                rng.pick(&["stderr", "log(info)", "stdout"]).to_string()
            };
            vec![
                ("output_stream", tf_str_attr(&stream)),
                ("end", tf_str_attr("\n")),
            ]
        }
        "RandomUniform" => vec![
            ("T", int32),
            ("dtype", tf_type_attr(tf_type::FLOAT)),
            ("seed", tf_int_attr(1)),
            ("seed2", tf_int_attr(2)),
        ],
        "Save" => vec![("T", tf_type_list(&[tf_type::FLOAT]))],
        "SaveV2" | "RestoreV2" => vec![("dtypes", tf_type_list(&[tf_type::FLOAT]))],
        "ImmutableConst" => vec![
            ("dtype", tf_type_attr(tf_type::FLOAT)),
            ("shape", Pb::default().msg(7, tf_shape(Some(&[4])))),
            ("memory_region_name", tf_str_attr(one(rng, LOCATIONS))),
        ],
        "WholeFileReaderV2" => vec![
            ("container", tf_str_attr("")),
            ("shared_name", tf_str_attr("")),
        ],
        "ReadFile" | "WriteFile" | "MatchingFiles" | "NoOp" => Vec::new(),
        _ => vec![t()],
    };
    if !attrs.is_empty() && rng.chance(8) {
        attrs.remove(rng.below(attrs.len()));
    }
    if rng.chance(10) {
        let name = *rng.pick(&["T", "dtype", "N", "value", "shape", "_class", "Tidx", "x"]);
        let value = match rng.below(5) {
            0 => tf_type_attr(rng.below(30) as i64),
            1 => tf_int_attr(rng.next_u64() as i64),
            2 => tf_str_attr(one(rng, LOCATIONS)),
            3 => Pb::default().msg(7, tf_shape(None)),
            _ => Pb::default().float(4, f32::from_bits(rng.next_u64() as u32)),
        };
        attrs.push((name, value));
    }
    attrs
}
