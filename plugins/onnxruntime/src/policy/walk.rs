//! The walk over the messages of a model that can hold tensors or nodes.

use std::collections::HashSet;

use super::wire::{
    attribute, each_bytes, function, graph, model, node, sparse_tensor, tensor, training_info,
    Fields, Value,
};
use super::{
    domain_is, printable, Checked, Refusal, ALLOWED_DOMAINS, DENIED_OPS, MAX_DEPTH, VARIADIC_OPS,
};

/// The walk over the messages that can hold tensors or nodes.
pub(super) struct Walk<'d> {
    pub(super) domains: &'d HashSet<&'d [u8]>,
}

/// `depth` one level down, or TooDeep.
pub(super) fn deeper(depth: usize) -> Checked<usize> {
    if depth >= MAX_DEPTH {
        return Err(Refusal::TooDeep);
    }
    Ok(depth + 1)
}

impl Walk<'_> {
    pub(super) fn model(&self, bytes: &[u8]) -> Checked {
        let depth = 0;
        each_bytes(bytes, |number, inner| match number {
            model::GRAPH => self.graph(inner, deeper(depth)?),
            model::TRAINING_INFO => self.training_info(inner, deeper(depth)?),
            model::FUNCTIONS => self.function(inner, deeper(depth)?),
            _ => Ok(()),
        })
    }

    fn graph(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            graph::NODE => self.node(inner, deeper(depth)?),
            graph::INITIALIZER => {
                deeper(depth)?;
                self.tensor(inner)
            }
            graph::SPARSE_INITIALIZER => self.sparse_tensor(inner, deeper(depth)?),
            _ => Ok(()),
        })
    }

    fn training_info(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            training_info::INITIALIZATION | training_info::ALGORITHM => {
                self.graph(inner, deeper(depth)?)
            }
            _ => Ok(()),
        })
    }

    fn function(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            function::NODE => self.node(inner, deeper(depth)?),
            function::ATTRIBUTE_PROTO => self.attribute(inner, deeper(depth)?),
            _ => Ok(()),
        })
    }

    fn node(&self, bytes: &[u8], depth: usize) -> Checked {
        let mut op: &[u8] = b"";
        let mut domain: &[u8] = b"";
        let mut forbidden: Option<&[u8]> = None;
        // The last position of an input named "" (an omitted optional input).
        let mut inputs = 0usize;
        let mut last_empty: Option<usize> = None;
        each_bytes(bytes, |number, inner| {
            match number {
                node::INPUT => {
                    if inner.is_empty() {
                        last_empty = Some(inputs);
                    }
                    inputs += 1;
                }
                node::OP_TYPE => op = inner,
                node::DOMAIN => {
                    domain = inner;
                    // Every value given counts, not only the last (the one protobuf keeps).
                    if forbidden.is_none() && !self.domain_allowed(inner) {
                        forbidden = Some(inner);
                    }
                }
                node::ATTRIBUTE => self.attribute(inner, deeper(depth)?)?,
                _ => {}
            }
            Ok(())
        })?;
        if let Some(domain) = forbidden {
            return Err(Refusal::ForbiddenOp {
                domain: printable(domain),
                op: printable(op),
                why: "custom operator domain",
            });
        }
        if let Some(position) = last_empty {
            if let Some((_, _, from)) = VARIADIC_OPS
                .iter()
                .find(|(d, o, _)| domain_is(d, domain) && o.as_bytes() == op)
            {
                if position >= *from {
                    return Err(Refusal::ForbiddenOp {
                        domain: if domain == b"ai.onnx" { String::new() } else { printable(domain) },
                        op: printable(op),
                        why: "an empty input name in a variadic position: only an optional input may be omitted",
                    });
                }
            }
        }
        if let Some((denied_domain, denied_op, why)) = DENIED_OPS
            .iter()
            .find(|(d, o, _)| d.as_bytes() == domain && o.as_bytes() == op)
        {
            return Err(Refusal::ForbiddenOp {
                domain: (*denied_domain).to_owned(),
                op: (*denied_op).to_owned(),
                why,
            });
        }
        Ok(())
    }

    fn domain_allowed(&self, domain: &[u8]) -> bool {
        ALLOWED_DOMAINS.iter().any(|d| d.as_bytes() == domain) || self.domains.contains(domain)
    }

    fn attribute(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            attribute::T | attribute::TENSORS => {
                deeper(depth)?;
                self.tensor(inner)
            }
            attribute::SPARSE_TENSOR | attribute::SPARSE_TENSORS => {
                self.sparse_tensor(inner, deeper(depth)?)
            }
            attribute::G | attribute::GRAPHS => self.graph(inner, deeper(depth)?),
            _ => Ok(()),
        })
    }

    fn sparse_tensor(&self, bytes: &[u8], depth: usize) -> Checked {
        each_bytes(bytes, |number, inner| match number {
            sparse_tensor::VALUES | sparse_tensor::INDICES => {
                deeper(depth)?;
                self.tensor(inner)
            }
            _ => Ok(()),
        })
    }

    fn tensor(&self, bytes: &[u8]) -> Checked {
        let mut fields = Fields::of(bytes);
        while let Some((number, value)) = fields.next_field()? {
            match (number, value) {
                (tensor::EXTERNAL_DATA, _) => return Err(Refusal::ExternalData),
                // An enum is an int32: protobuf keeps the low 32 bits.
                (tensor::DATA_LOCATION, Value::Varint(location)) if location as u32 != 0 => {
                    return Err(Refusal::ExternalData)
                }
                (tensor::DATA_LOCATION, Value::Bytes(packed)) => {
                    // Not how a singular enum is written (protobuf would skip it as unknown);
                    // refused all the same when it says anything but DEFAULT.
                    let mut values = Fields::of(packed);
                    while !values.rest.is_empty() {
                        if values.varint()? as u32 != 0 {
                            return Err(Refusal::ExternalData);
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }
}
