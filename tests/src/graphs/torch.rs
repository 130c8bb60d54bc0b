//! TorchScript scripts that chain torch calls, now and then `torch.from_file`.

use super::*;

/// Torch calls a script chains: `{v}` and `{w}` are earlier tensors, `{n}` a small count.
const TORCH_CALLS: &[&str] = &[
    "torch.add({v}, {w})",
    "torch.relu({v})",
    "{v}.sum()",
    "torch.cat([{v}, {w}])",
    "torch.zeros([{n}])",
    "torch.ones([{n}, {n}])",
    "{v} * 2",
    "{v} + 1",
    "torch.matmul({v}, {w})",
    "{v}.reshape([-1])",
    "torch.stack([{v}, {w}])",
    "{v}.view([{n}, -1])",
    "torch.exp({v})",
    "{v}.to(torch.int64)",
    "{v}.float()",
    "torch.flip({v}, [0])",
    "{v}[0:{n}]",
    "torch.mean({v})",
    "torch.arange({n})",
    "torch.tensor([{n}, {n}])",
    "torch.sort({v})[0]",
    "torch.cumsum({v}, 0)",
    "torch.where({v} > 0, {v}, {w})",
    "torch.max({v})",
    "{v}.t()",
    "torch.softmax({v}, 0)",
    "{v}.unsqueeze(0)",
    "{v}.squeeze()",
    "torch.rand([{n}])",
    "{v}.repeat([{n}])",
    "{v}.clone()",
    "torch.clamp({v}, min=0.0)",
    "torch.sigmoid({v})",
    "{v}.abs()",
    "torch.full([{n}], 7)",
    "{v} / {w}",
    "torch.tensor([len(args), len(keys)])",
    "{v}.contiguous()",
    "{v}.transpose(0, -1)",
    "torch.tensor([float(len(a)) for a in args] + [1.0])",
    "torch.zeros([-{n}])",
    "{v}.view([-1, 0])",
    "torch.index_select({v}, 0, torch.tensor([{n}, -{n}]))",
    "{v}[{n}]",
    "torch.narrow({v}, 0, {n}, 2)",
    "torch.gather({v}, 0, torch.tensor([[{n}]]))",
    "{v}.expand([{n}, -1, 2])",
    "torch.nonzero({v})",
    "torch.unique({v})",
    "{v}.to(torch.uint8)",
    "torch.topk({v}, {n})[0]",
    "torch.kthvalue({v}, {n})[0]",
    "torch.linalg.inv({v})",
];

/// Calls that read a file: a store of a script with one must be refused.
const TORCH_FROM_FILE: &[&str] = &[
    "torch.from_file(args[0], False, 10, dtype=torch.uint8)",
    "torch.from_file(\"../../etc/passwd\", False, 10, dtype=torch.uint8)",
    "torch.from_file(\"dump.rdb\", None, 64, dtype=torch.uint8)",
    "torch.from_file(keys[0], True, 10, dtype=torch.uint8)",
    "torch.from_file(filename=args[0], shared=False, size=4, dtype=torch.float32)",
];

pub(super) const SCRIPT_SIGNATURE: &str =
    "(tensors: List[Tensor], keys: List[str], args: List[str])";

/// A TorchScript script with entry point `f` (and now and then a helper `g` it calls):
/// a chain of 1-5 torch calls on the input tensor; now and then one of them is
/// `torch.from_file` (plainly, in a branch never taken, or in the helper), which the
/// TORCH sandbox must refuse at store.
pub fn torch_script(rng: &mut Rng) -> Generated {
    let mut lines = Vec::new();
    let mut vars = vec!["t".to_owned()];
    let mut generated = Generated::new(Vec::new());
    let hostile = rng.chance(20);
    let hostile_at = rng.below(5);
    let count = 1 + rng.below(5);
    let helper = rng.chance(20);
    let mut helper_lines = Vec::new();
    let (mut file_call, mut file_var) = (None, None);
    for k in 0..count {
        let call = if hostile && k == hostile_at.min(count - 1) {
            file_call = Some(*rng.pick(TORCH_FROM_FILE));
            file_var = Some(format!("v{k}"));
            file_call.unwrap_or_default()
        } else {
            *rng.pick(TORCH_CALLS)
        };
        let fill = |rng: &mut Rng, vars: &[String]| {
            call.replace("{v}", rng.pick(vars).as_str())
                .replace("{w}", rng.pick(vars).as_str())
                .replace("{n}", &(1 + rng.below(3)).to_string())
        };
        let expr = fill(rng, &vars);
        generated
            .ops
            .push(call.split('(').next().unwrap_or(call).to_owned());
        let var = format!("v{k}");
        if call.contains("from_file") && helper {
            helper_lines.push(format!("    return {expr}"));
            lines.push(format!("    {var} = g(tensors, keys, args)"));
        } else if call.contains("from_file") && rng.chance(30) {
            // In a branch no run takes.
            lines.push(format!("    {var} = tensors[0]"));
            lines.push("    if len(args) > 1000:".to_owned());
            lines.push(format!("        {var} = {expr}"));
        } else {
            lines.push(format!("    {var} = {expr}"));
        }
        vars.push(var);
    }
    let mut ret = if rng.chance(15) {
        format!("[{}, {}]", rng.pick(&vars), rng.pick(&vars))
    } else {
        vars.last().cloned().unwrap_or_default()
    };
    if let (Some(call), Some(var)) = (file_call, file_var) {
        // What from_file returns is returned (TorchScript drops an unused call, which
        // then never runs: such scripts are counted apart), except in a helper, which
        // keeps its call whatever the caller does with its result.
        if helper || rng.chance(85) {
            if !helper && !ret.contains(&var) {
                ret = if rng.chance(50) {
                    var
                } else {
                    format!("[{ret}, {var}]")
                };
            }
            generated.refuse(format!("torch.from_file: {call}"));
        } else {
            generated
                .other_file_ops
                .push("from_file (result maybe unused)".to_owned());
        }
    }
    let mut source = String::new();
    if !helper_lines.is_empty() {
        source += &format!("def g{SCRIPT_SIGNATURE}:\n{}\n\n", helper_lines.join("\n"));
    }
    source += &format!(
        "def f{SCRIPT_SIGNATURE}:\n    t = tensors[0]\n{}\n    return {ret}\n",
        lines.join("\n")
    );
    generated.bytes = source.into_bytes();
    generated.names = vec!["f".to_owned()];
    generated.input = float_input(rng, &[2, 2]);
    generated
}
