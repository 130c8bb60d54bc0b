//! A GraphDef, as far as the policy needs it: its nodes' op types and the functions
//! their attributes name, and the function library.

pub(super) struct Node<'a> {
    pub(super) op: &'a [u8],
    /// Function names in the node's attributes (`func`, `list.func`, nested).
    pub(super) called: Vec<&'a [u8]>,
}

pub(super) struct Function<'a> {
    pub(super) name: &'a [u8],
    pub(super) nodes: Vec<Node<'a>>,
}

pub(super) struct Graph<'a> {
    pub(super) nodes: Vec<Node<'a>>,
    pub(super) functions: Vec<Function<'a>>,
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
pub(super) fn parse_graph(message: &[u8]) -> Result<Graph<'_>, String> {
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
