//! The load policy: a stored model is hostile input, so a GraphDef may use only operations
//! of pure computation. [`check`] walks the serialized GraphDef before TensorFlow sees it and
//! refuses the first operation that is not on [`ALLOWED`] with
//! `model uses a forbidden operation: <OpType> (<rule>)`, the rule saying why (`file
//! access`, `datasets, queues and iterators`, `summaries`, `Python functions`, `network`,
//! `debugging output`, `process control`, or `not on the allow-list` for anything else,
//! unknown ops included).
//!
//! What is checked, so that no way of naming an operation escapes:
//! - every `NodeDef.op` of the graph (`GraphDef.node`), and of every function of the
//!   graph's library (`GraphDef.library.function[].node_def`): an op type is either on the
//!   allow-list or the name of a function of the library (a function called as an op; its
//!   body is checked with the others);
//! - every function named in an attribute (`AttrValue.func`, and `AttrValue.list.func`,
//!   with the attributes nested in them): `PartitionedCall`, `While`, `If` and the like call
//!   those, and TensorFlow runs a *primitive op* of that name when no function has it, so
//!   such a name must be a library function or an allowed op too.
//!
//! The walk follows protobuf's rules as TensorFlow's parser applies them: a repeated or
//! merged message (`node`, `library`, `function`) counts every occurrence, a singular string
//! (`op`) its last one; unknown fields are skipped. A blob this parser cannot read (bad
//! varint, a length past the end, a group, a known field with the wrong wire type) is
//! refused: nothing unchecked reaches TensorFlow.
//!
//! The allow-list (about 480 op types) is math, neural network, array, control flow (TF1
//! `Switch`/`Merge`/`Enter`/`Exit`/`NextIteration`/`LoopCond` and TF2 `While`/`If`/`Case`/
//! `PartitionedCall`), image decoding and encoding, string, parsing, random and in-memory
//! lookup table ops: what frozen inference graphs use. Nothing that opens, lists or writes
//! files, reads datasets, uses queues or iterators, writes summaries or debug output, runs
//! Python, talks to other processes or hosts, loads libraries, or starts threads of its own.

use std::collections::HashSet;

/// Why a blob is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// An operation that is not allowed: its type and the rule.
    Forbidden { op: String, rule: &'static str },
    /// The blob does not parse as a GraphDef (the detail says where).
    Malformed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Forbidden { op, rule } => {
                write!(f, "model uses a forbidden operation: {op} ({rule})")
            }
            Refusal::Malformed(detail) => write!(f, "the GraphDef could not be checked: {detail}"),
        }
    }
}

/// Checks a serialized GraphDef against the policy.
pub fn check(graph_def: &[u8]) -> Result<(), Refusal> {
    let graph = parse_graph(graph_def).map_err(Refusal::Malformed)?;
    let functions: HashSet<&[u8]> = graph.functions.iter().map(|f| f.name).collect();
    let allowed = |name: &[u8]| is_allowed(name) || functions.contains(name);
    let refuse = |name: &[u8]| Refusal::Forbidden {
        op: String::from_utf8_lossy(name).into_owned(),
        rule: rule(name),
    };
    let nodes = graph
        .nodes
        .iter()
        .chain(graph.functions.iter().flat_map(|f| f.nodes.iter()));
    for node in nodes {
        if !allowed(node.op) {
            return Err(refuse(node.op));
        }
        for name in &node.called {
            if !allowed(name) {
                return Err(refuse(name));
            }
        }
    }
    Ok(())
}

fn is_allowed(op: &[u8]) -> bool {
    std::str::from_utf8(op).is_ok_and(|op| ALLOWED.binary_search(&op).is_ok())
}

/// The rule a forbidden op breaks (for the message only: everything not on the allow-list
/// is refused).
fn rule(op: &[u8]) -> &'static str {
    let op = String::from_utf8_lossy(op);
    let op = op.as_ref();
    let has = |part: &str| op.contains(part);
    const FILES: &[&str] = &[
        "ReadFile",
        "WriteFile",
        "MatchingFiles",
        "ImmutableConst",
        "LoadAndRemapMatrix",
        "GenerateVocabRemapping",
        "PrintV2",
        "DecodeProtoV2",
    ];
    if FILES.contains(&op)
        || has("Reader")
        || has("File")
        || has("Checkpoint")
        || op.starts_with("Save")
        || op.starts_with("Restore")
    {
        "file access"
    } else if has("Dataset") || has("Iterator") || has("Queue") || has("Barrier") {
        "datasets, queues and iterators"
    } else if has("Summary") || op.starts_with("Write") || has("SummaryWriter") {
        "summaries"
    } else if has("PyFunc") {
        "Python functions"
    } else if has("Rpc")
        || has("Send")
        || has("Recv")
        || op.starts_with("Collective")
        || op.starts_with("Nccl")
    {
        "network"
    } else if op.starts_with("Debug") || op == "Print" {
        "debugging output"
    } else if op == "Abort" {
        "process control"
    } else {
        "not on the allow-list"
    }
}

// --- a GraphDef, as far as the policy needs it ------------------------------------------

struct Node<'a> {
    op: &'a [u8],
    /// Function names in the node's attributes (`func`, `list.func`, nested).
    called: Vec<&'a [u8]>,
}

struct Function<'a> {
    name: &'a [u8],
    nodes: Vec<Node<'a>>,
}

struct Graph<'a> {
    nodes: Vec<Node<'a>>,
    functions: Vec<Function<'a>>,
}

/// A field's value: a varint, or the bytes of a length-delimited field (fixed-size fields
/// are skipped: the policy needs none).
enum Value<'a> {
    Varint,
    Fixed,
    Bytes(&'a [u8]),
}

/// The fields of a message, in order; an error for bytes that are not a message.
struct Fields<'a> {
    rest: &'a [u8],
}

fn fields(message: &[u8]) -> Fields<'_> {
    Fields { rest: message }
}

fn varint(rest: &mut &[u8]) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, tail) = rest
            .split_first()
            .ok_or("a varint runs past the end of its message")?;
        *rest = tail;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("a varint is longer than ten bytes".to_owned())
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Value<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = (|| {
            let key = varint(&mut self.rest)?;
            let field = key >> 3;
            if field == 0 {
                return Err("a field numbered 0".to_owned());
            }
            let value = match key & 7 {
                0 => {
                    varint(&mut self.rest)?;
                    Value::Varint
                }
                1 | 5 => {
                    let size = if key & 7 == 1 { 8 } else { 4 };
                    if self.rest.len() < size {
                        return Err("a fixed-size field runs past the end".to_owned());
                    }
                    self.rest = &self.rest[size..];
                    Value::Fixed
                }
                2 => {
                    let len = varint(&mut self.rest)?;
                    let len = usize::try_from(len)
                        .ok()
                        .filter(|&len| len <= self.rest.len())
                        .ok_or("a length-delimited field runs past the end")?;
                    let (bytes, tail) = self.rest.split_at(len);
                    self.rest = tail;
                    Value::Bytes(bytes)
                }
                wire => return Err(format!("wire type {wire} (groups are not read)")),
            };
            Ok((field, value))
        })();
        if item.is_err() {
            // Stop after an error.
            self.rest = &[];
        }
        Some(item)
    }
}

/// The bytes of a length-delimited field, or an error naming the field.
fn bytes<'a>(value: Value<'a>, what: &str) -> Result<&'a [u8], String> {
    match value {
        Value::Bytes(bytes) => Ok(bytes),
        _ => Err(format!("{what} has the wrong wire type")),
    }
}

/// GraphDef: node = 1, library = 2 (FunctionDefLibrary: function = 1).
fn parse_graph(message: &[u8]) -> Result<Graph<'_>, String> {
    let mut graph = Graph {
        nodes: Vec::new(),
        functions: Vec::new(),
    };
    for field in fields(message) {
        match field? {
            (1, value) => graph
                .nodes
                .push(parse_node(bytes(value, "GraphDef.node")?)?),
            (2, value) => {
                for field in fields(bytes(value, "GraphDef.library")?) {
                    if let (1, value) = field? {
                        let function = bytes(value, "FunctionDefLibrary.function")?;
                        graph.functions.push(parse_function(function)?);
                    }
                }
            }
            _ => {}
        }
    }
    Ok(graph)
}

/// NodeDef: op = 2 (the last one wins), attr = 5 (map entry: key = 1, value = 2).
fn parse_node(message: &[u8]) -> Result<Node<'_>, String> {
    let mut node = Node {
        op: b"",
        called: Vec::new(),
    };
    for field in fields(message) {
        match field? {
            (2, value) => node.op = bytes(value, "NodeDef.op")?,
            (5, value) => {
                for field in fields(bytes(value, "NodeDef.attr")?) {
                    if let (2, value) = field? {
                        attr_functions(bytes(value, "NodeDef.attr value")?, &mut node.called, 0)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(node)
}

/// Protobuf's own limit on message nesting.
const MAX_DEPTH: usize = 100;

/// Collects the function names of an AttrValue: func = 10 (NameAttrList), list = 1
/// (ListValue: func = 9).
fn attr_functions<'a>(
    message: &'a [u8],
    called: &mut Vec<&'a [u8]>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err("attributes nest too deeply".to_owned());
    }
    for field in fields(message) {
        match field? {
            (10, value) => name_attr_list(bytes(value, "AttrValue.func")?, called, depth)?,
            (1, value) => {
                for field in fields(bytes(value, "AttrValue.list")?) {
                    if let (9, value) = field? {
                        name_attr_list(bytes(value, "ListValue.func")?, called, depth)?;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// NameAttrList: name = 1 (the last one wins), attr = 2 (map entry: key = 1, value = 2).
fn name_attr_list<'a>(
    message: &'a [u8],
    called: &mut Vec<&'a [u8]>,
    depth: usize,
) -> Result<(), String> {
    let mut name: &[u8] = b"";
    for field in fields(message) {
        match field? {
            (1, value) => name = bytes(value, "NameAttrList.name")?,
            (2, value) => {
                for field in fields(bytes(value, "NameAttrList.attr")?) {
                    if let (2, value) = field? {
                        attr_functions(
                            bytes(value, "NameAttrList.attr value")?,
                            called,
                            depth + 1,
                        )?;
                    }
                }
            }
            _ => {}
        }
    }
    called.push(name);
    Ok(())
}

/// FunctionDef: signature = 1 (OpDef: name = 1), node_def = 3.
fn parse_function(message: &[u8]) -> Result<Function<'_>, String> {
    let mut function = Function {
        name: b"",
        nodes: Vec::new(),
    };
    for field in fields(message) {
        match field? {
            (1, value) => {
                for field in fields(bytes(value, "FunctionDef.signature")?) {
                    if let (1, value) = field? {
                        function.name = bytes(value, "OpDef.name")?;
                    }
                }
            }
            (3, value) => function
                .nodes
                .push(parse_node(bytes(value, "FunctionDef.node_def")?)?),
            _ => {}
        }
    }
    Ok(function)
}

/// The op types a model may use, sorted (a test checks it): pure computation only, and
/// only ops of TensorFlow's public API (no `_`-prefixed internal ones).
pub const ALLOWED: &[&str] = &[
    "Abs",
    "Acos",
    "Acosh",
    "Add",
    "AddN",
    "AddV2",
    "AdjustContrast",
    "AdjustContrastv2",
    "AdjustHue",
    "AdjustSaturation",
    "All",
    "Angle",
    "Any",
    "ApproximateEqual",
    "ArgMax",
    "ArgMin",
    "AsString",
    "Asin",
    "Asinh",
    "Assert",
    "Atan",
    "Atan2",
    "Atanh",
    "AvgPool",
    "AvgPool3D",
    "BatchMatMul",
    "BatchMatMulV2",
    "BatchMatMulV3",
    "BatchNormWithGlobalNormalization",
    "BatchToSpace",
    "BatchToSpaceND",
    "Betainc",
    "BiasAdd",
    "BiasAddV1",
    "Bincount",
    "Bitcast",
    "BitwiseAnd",
    "BitwiseOr",
    "BitwiseXor",
    "BroadcastArgs",
    "BroadcastGradientArgs",
    "BroadcastTo",
    "Bucketize",
    "CTCBeamSearchDecoder",
    "CTCGreedyDecoder",
    "Case",
    "Cast",
    "Ceil",
    "CheckNumerics",
    "CheckNumericsV2",
    "Cholesky",
    "ClipByValue",
    "CombinedNonMaxSuppression",
    "Complex",
    "ComplexAbs",
    "Concat",
    "ConcatOffset",
    "ConcatV2",
    "Conj",
    "ConjugateTranspose",
    "Const",
    "ControlTrigger",
    "Conv",
    "Conv2D",
    "Conv2DBackpropInput",
    "Conv3D",
    "Conv3DBackpropInputV2",
    "Cos",
    "Cosh",
    "CropAndResize",
    "Cross",
    "Cumprod",
    "Cumsum",
    "CumulativeLogsumexp",
    "DecodeBase64",
    "DecodeBmp",
    "DecodeCSV",
    "DecodeCompressed",
    "DecodeGif",
    "DecodeImage",
    "DecodeJSONExample",
    "DecodeJpeg",
    "DecodePaddedRaw",
    "DecodePng",
    "DecodeRaw",
    "DenseBincount",
    "DepthToSpace",
    "DepthwiseConv2dNative",
    "DepthwiseConv2dNativeBackpropInput",
    "Dequantize",
    "Diag",
    "DiagPart",
    "Digamma",
    "Dilation2D",
    "Div",
    "DivNoNan",
    "DrawBoundingBoxes",
    "DrawBoundingBoxesV2",
    "DynamicPartition",
    "DynamicStitch",
    "EditDistance",
    "Einsum",
    "Elu",
    "Empty",
    "EmptyTensorList",
    "EncodeBase64",
    "EncodeJpeg",
    "EncodePng",
    "EnsureShape",
    "Enter",
    "Equal",
    "Erf",
    "Erfc",
    "Erfinv",
    "EuclideanNorm",
    "Exit",
    "Exp",
    "ExpandDims",
    "Expm1",
    "ExtractGlimpse",
    "ExtractGlimpseV2",
    "ExtractImagePatches",
    "ExtractJpegShape",
    "ExtractVolumePatches",
    "FFT",
    "FFT2D",
    "FFT3D",
    "FakeQuantWithMinMaxArgs",
    "FakeQuantWithMinMaxVars",
    "FakeQuantWithMinMaxVarsPerChannel",
    "Fill",
    "Fingerprint",
    "Floor",
    "FloorDiv",
    "FloorMod",
    "FractionalAvgPool",
    "FractionalMaxPool",
    "FusedBatchNorm",
    "FusedBatchNormV2",
    "FusedBatchNormV3",
    "FusedPadConv2D",
    "FusedResizeAndPadConv2D",
    "Gather",
    "GatherNd",
    "GatherV2",
    "Greater",
    "GreaterEqual",
    "GuaranteeConst",
    "HSVToRGB",
    "HashTable",
    "HashTableV2",
    "HistogramFixedWidth",
    "HostConst",
    "IFFT",
    "IFFT2D",
    "IFFT3D",
    "IRFFT",
    "IRFFT2D",
    "IRFFT3D",
    "Identity",
    "IdentityN",
    "If",
    "Igamma",
    "Igammac",
    "Imag",
    "InTopK",
    "InTopKV2",
    "InitializeTable",
    "InitializeTableV2",
    "Inv",
    "InvertPermutation",
    "IsFinite",
    "IsInf",
    "IsNan",
    "L2Loss",
    "LRN",
    "LeakyRelu",
    "LeftShift",
    "Less",
    "LessEqual",
    "Lgamma",
    "LinSpace",
    "ListDiff",
    "Log",
    "Log1p",
    "LogMatrixDeterminant",
    "LogSoftmax",
    "LogicalAnd",
    "LogicalNot",
    "LogicalOr",
    "LookupTableFind",
    "LookupTableFindV2",
    "LookupTableImport",
    "LookupTableImportV2",
    "LookupTableSize",
    "LookupTableSizeV2",
    "LoopCond",
    "LowerBound",
    "Lu",
    "MatMul",
    "MatrixBandPart",
    "MatrixDeterminant",
    "MatrixDiag",
    "MatrixDiagPart",
    "MatrixDiagPartV2",
    "MatrixDiagPartV3",
    "MatrixDiagV2",
    "MatrixDiagV3",
    "MatrixInverse",
    "MatrixSetDiag",
    "MatrixSetDiagV2",
    "MatrixSetDiagV3",
    "MatrixSolve",
    "MatrixSquareRoot",
    "MatrixTriangularSolve",
    "Max",
    "MaxPool",
    "MaxPool3D",
    "MaxPoolV2",
    "MaxPoolWithArgmax",
    "Maximum",
    "Mean",
    "Merge",
    "Min",
    "Minimum",
    "MirrorPad",
    "Mod",
    "Mul",
    "MulNoNan",
    "Multinomial",
    "Ndtri",
    "Neg",
    "NextAfter",
    "NextIteration",
    "NoOp",
    "NonMaxSuppression",
    "NonMaxSuppressionV2",
    "NonMaxSuppressionV3",
    "NonMaxSuppressionV4",
    "NonMaxSuppressionV5",
    "NotEqual",
    "NthElement",
    "OneHot",
    "OnesLike",
    "Pack",
    "Pad",
    "PadV2",
    "ParallelConcat",
    "ParseExample",
    "ParseExampleV2",
    "ParseSingleExample",
    "ParseSingleSequenceExample",
    "ParseTensor",
    "PartitionedCall",
    "Placeholder",
    "PlaceholderV2",
    "PlaceholderWithDefault",
    "Polygamma",
    "PopulationCount",
    "Pow",
    "PreventGradient",
    "Prod",
    "Qr",
    "QuantizeAndDequantize",
    "QuantizeAndDequantizeV2",
    "QuantizeAndDequantizeV3",
    "QuantizeAndDequantizeV4",
    "QuantizeV2",
    "QuantizedAdd",
    "QuantizedAvgPool",
    "QuantizedBiasAdd",
    "QuantizedConcat",
    "QuantizedConv2D",
    "QuantizedMatMul",
    "QuantizedMaxPool",
    "QuantizedMul",
    "QuantizedRelu",
    "QuantizedRelu6",
    "QuantizedReshape",
    "QuantizedResizeBilinear",
    "RFFT",
    "RFFT2D",
    "RFFT3D",
    "RGBToHSV",
    "RaggedGather",
    "RaggedRange",
    "RaggedTensorFromVariant",
    "RaggedTensorToSparse",
    "RaggedTensorToTensor",
    "RaggedTensorToVariant",
    "RandomGamma",
    "RandomPoisson",
    "RandomPoissonV2",
    "RandomShuffle",
    "RandomStandardNormal",
    "RandomUniform",
    "RandomUniformInt",
    "Range",
    "Rank",
    "Real",
    "RealDiv",
    "Reciprocal",
    "ReduceJoin",
    "RefEnter",
    "RefExit",
    "RefIdentity",
    "RefMerge",
    "RefNextIteration",
    "RefSelect",
    "RefSwitch",
    "RegexFullMatch",
    "RegexReplace",
    "Relu",
    "Relu6",
    "RequantizationRange",
    "Requantize",
    "Reshape",
    "ResizeArea",
    "ResizeBicubic",
    "ResizeBilinear",
    "ResizeNearestNeighbor",
    "Reverse",
    "ReverseSequence",
    "ReverseV2",
    "RightShift",
    "Rint",
    "Roll",
    "Round",
    "Rsqrt",
    "SampleDistortedBoundingBox",
    "SampleDistortedBoundingBoxV2",
    "ScatterNd",
    "ScatterNdNonAliasingAdd",
    "SegmentMax",
    "SegmentMean",
    "SegmentMin",
    "SegmentProd",
    "SegmentSum",
    "Select",
    "SelectV2",
    "SelfAdjointEig",
    "SelfAdjointEigV2",
    "Selu",
    "SerializeTensor",
    "Shape",
    "ShapeN",
    "Sigmoid",
    "Sign",
    "Sin",
    "Sinh",
    "Size",
    "Slice",
    "Snapshot",
    "Softmax",
    "Softplus",
    "Softsign",
    "SpaceToBatch",
    "SpaceToBatchND",
    "SpaceToDepth",
    "SparseFillEmptyRows",
    "SparseReshape",
    "SparseSegmentMean",
    "SparseSegmentSqrtN",
    "SparseSegmentSum",
    "SparseSoftmaxCrossEntropyWithLogits",
    "SparseTensorDenseMatMul",
    "SparseToDense",
    "Split",
    "SplitV",
    "Sqrt",
    "Square",
    "SquaredDifference",
    "Squeeze",
    "StatefulPartitionedCall",
    "StatelessCase",
    "StatelessIf",
    "StatelessMultinomial",
    "StatelessRandomGetAlg",
    "StatelessRandomGetKeyCounter",
    "StatelessRandomGetKeyCounterAlg",
    "StatelessRandomNormal",
    "StatelessRandomNormalV2",
    "StatelessRandomUniform",
    "StatelessRandomUniformFullInt",
    "StatelessRandomUniformFullIntV2",
    "StatelessRandomUniformInt",
    "StatelessRandomUniformIntV2",
    "StatelessRandomUniformV2",
    "StatelessTruncatedNormal",
    "StatelessTruncatedNormalV2",
    "StatelessWhile",
    "StaticRegexFullMatch",
    "StaticRegexReplace",
    "StopGradient",
    "StridedSlice",
    "StringFormat",
    "StringJoin",
    "StringLength",
    "StringLower",
    "StringSplit",
    "StringSplitV2",
    "StringStrip",
    "StringToHashBucket",
    "StringToHashBucketFast",
    "StringToHashBucketStrong",
    "StringToNumber",
    "StringUpper",
    "Sub",
    "Substr",
    "Sum",
    "Svd",
    "Switch",
    "Tan",
    "Tanh",
    "TensorArrayCloseV3",
    "TensorArrayConcatV3",
    "TensorArrayGatherV3",
    "TensorArrayReadV3",
    "TensorArrayScatterV3",
    "TensorArraySizeV3",
    "TensorArraySplitV3",
    "TensorArrayV3",
    "TensorArrayWriteV3",
    "TensorListConcatV2",
    "TensorListElementShape",
    "TensorListFromTensor",
    "TensorListGather",
    "TensorListGetItem",
    "TensorListLength",
    "TensorListPopBack",
    "TensorListPushBack",
    "TensorListReserve",
    "TensorListResize",
    "TensorListScatterIntoExistingList",
    "TensorListScatterV2",
    "TensorListSetItem",
    "TensorListSplit",
    "TensorListStack",
    "TensorScatterAdd",
    "TensorScatterMax",
    "TensorScatterMin",
    "TensorScatterSub",
    "TensorScatterUpdate",
    "Tile",
    "TopK",
    "TopKV2",
    "Transpose",
    "TruncateDiv",
    "TruncateMod",
    "TruncatedNormal",
    "UnicodeDecode",
    "UnicodeDecodeWithOffsets",
    "UnicodeEncode",
    "UnicodeScript",
    "UnicodeTranscode",
    "Unique",
    "UniqueV2",
    "UniqueWithCounts",
    "UniqueWithCountsV2",
    "Unpack",
    "UnravelIndex",
    "UnsortedSegmentMax",
    "UnsortedSegmentMin",
    "UnsortedSegmentProd",
    "UnsortedSegmentSum",
    "UpperBound",
    "Where",
    "While",
    "Xdivy",
    "Xlog1py",
    "Xlogy",
    "ZerosLike",
    "Zeta",
    // Not grappler's internal fusions (`_FusedConv2D`, `_FusedMatMul`, `_FusedBatchNormEx`):
    // grappler (off in this backend, see `proto.rs`) makes them at run time, frozen graphs
    // do not hold them, and their kernels trust the graph: a BiasAdd argument shorter than
    // the output's channels is read past its end (TensorFlow's memory comes back in the
    // output).
];

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u64, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut put = |mut n: u64| {
            while n >= 0x80 {
                out.push((n as u8 & 0x7f) | 0x80);
                n >>= 7;
            }
            out.push(n as u8);
        };
        put(number << 3 | 2);
        put(bytes.len() as u64);
        out.extend_from_slice(bytes);
        out
    }

    fn node(op: &str) -> Vec<u8> {
        [field(1, b"n"), field(2, op.as_bytes())].concat()
    }

    fn forbidden(op: &str, rule: &'static str) -> Result<(), Refusal> {
        Err(Refusal::Forbidden {
            op: op.to_owned(),
            rule,
        })
    }

    #[test]
    fn the_allow_list_is_sorted_and_unique() {
        assert!(ALLOWED.windows(2).all(|w| w[0] < w[1]));
        for op in ALLOWED {
            assert_eq!(rule(op.as_bytes()), "not on the allow-list", "{op}");
        }
    }

    #[test]
    fn nodes_are_checked() {
        assert_eq!(check(b""), Ok(()));
        assert_eq!(check(&field(1, &node("MatMul"))), Ok(()));
        assert_eq!(
            check(&[field(1, &node("Const")), field(1, &node("ReadFile"))].concat()),
            forbidden("ReadFile", "file access")
        );
        assert_eq!(
            check(&field(1, &node("MatchingFiles"))),
            forbidden("MatchingFiles", "file access")
        );
        assert_eq!(
            check(&field(1, &node("TFRecordDataset"))),
            forbidden("TFRecordDataset", "datasets, queues and iterators")
        );
        assert_eq!(
            check(&field(1, &node("EagerPyFunc"))),
            forbidden("EagerPyFunc", "Python functions")
        );
        assert_eq!(
            check(&field(1, &node("Nope"))),
            forbidden("Nope", "not on the allow-list")
        );
        // The last `op` of a node is the one TensorFlow reads.
        let twice = [field(2, b"Identity"), field(2, b"WriteFile")].concat();
        assert_eq!(
            check(&field(1, &twice)),
            forbidden("WriteFile", "file access")
        );
    }

    #[test]
    fn functions_and_function_attributes_are_checked() {
        // library { function { signature { name: "f" } node_def { op: "ReadFile" } } }
        let function = [field(1, &field(1, b"f")), field(3, &node("ReadFile"))].concat();
        let library = field(2, &field(1, &function));
        assert_eq!(check(&library), forbidden("ReadFile", "file access"));
        // A function called as an op is allowed (its body is checked).
        let function = [field(1, &field(1, b"f")), field(3, &node("Relu"))].concat();
        let graph = [field(1, &node("f")), field(2, &field(1, &function))].concat();
        assert_eq!(check(&graph), Ok(()));
        // A `func` attribute naming a primitive op: TensorFlow would run that op.
        let attr = |name: &str| {
            let func = field(10, &field(1, name.as_bytes()));
            field(5, &[field(1, b"f"), field(2, &func)].concat())
        };
        let call = [node("PartitionedCall"), attr("ReadFile")].concat();
        assert_eq!(
            check(&field(1, &call)),
            forbidden("ReadFile", "file access")
        );
        let call = [node("PartitionedCall"), attr("f")].concat();
        let graph = [field(1, &call), field(2, &field(1, &function))].concat();
        assert_eq!(check(&graph), Ok(()));
        // In a list of functions too.
        let list = field(1, &field(9, &field(1, b"WriteFile")));
        let call = [
            node("Case"),
            field(5, &[field(1, b"branches"), field(2, &list)].concat()),
        ]
        .concat();
        assert_eq!(
            check(&field(1, &call)),
            forbidden("WriteFile", "file access")
        );
    }

    #[test]
    fn what_does_not_parse_is_refused() {
        for blob in [
            &b"\x0a\x05ab"[..], // a length past the end
            &b"\x0a\xff"[..],   // a varint past the end
            &b"\x0b\x0c"[..],   // a group
            &b"\x08\x01"[..],   // `node` as a varint
            &b"\x00\x01"[..],   // field 0
        ] {
            assert!(
                matches!(check(blob), Err(Refusal::Malformed(_))),
                "{blob:?}: {:?}",
                check(blob)
            );
        }
        // Unknown fields are skipped, as protobuf does.
        assert_eq!(
            check(b"\x20\x05\x39\x01\x02\x03\x04\x05\x06\x07\x08"),
            Ok(())
        );
    }
}
