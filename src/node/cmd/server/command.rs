//! COMMAND and its subcommands, answered from the command table
//! (src/command), in Redis 7.0's reply shapes.
//!
//! The table keeps everything `COMMAND INFO` reports except the ACL
//! categories and key spec notes: the categories given here are the ones
//! Redis derives from the flags (`@read`, `@write`, `@fast`/`@slow`,
//! `@admin`, `@dangerous`, `@pubsub`, `@blocking`), without the per-type
//! ones (`@string`, `@list`...). COMMAND DOCS is refused: the node ships
//! no documentation.

use super::super::{Args, CmdError, CmdResult, Ctx, Outcome};
use crate::command::{
    self, BeginSearch, COMMANDS, CommandSpec, FindKeys, KeySpec, all_commands, flags,
};
use crate::node::glob;
use crate::resp::{Request, encode};

/// The ACL categories Redis derives from a command's flags
/// (`setImplicitACLCategories`), in Redis's category order.
fn implied_categories(spec: &CommandSpec) -> Vec<&'static str> {
    let has = |f| spec.has_flag(f);
    let mut cats = Vec::new();
    for (on, name) in [
        (has(flags::READONLY), "@read"),
        (has(flags::WRITE), "@write"),
        (has(flags::PUBSUB), "@pubsub"),
        (has(flags::ADMIN), "@admin"),
        (has(flags::FAST), "@fast"),
        (!has(flags::FAST), "@slow"),
        (has(flags::BLOCKING), "@blocking"),
        (has(flags::ADMIN), "@dangerous"),
    ] {
        if on {
            cats.push(name);
        }
    }
    cats
}

fn bulk_str(ctx: &mut Ctx<'_>, text: &str) {
    encode::bulk(ctx.out, text.as_bytes());
}

fn key_spec(ctx: &mut Ctx<'_>, spec: &KeySpec) {
    ctx.array_header(6);
    bulk_str(ctx, "flags");
    ctx.array_header(spec.flags.len());
    for flag in spec.flags {
        encode::simple(ctx.out, flag);
    }
    bulk_str(ctx, "begin_search");
    ctx.array_header(4);
    bulk_str(ctx, "type");
    match spec.begin {
        BeginSearch::Index(i) => {
            bulk_str(ctx, "index");
            bulk_str(ctx, "spec");
            ctx.array_header(2);
            bulk_str(ctx, "index");
            encode::integer(ctx.out, i as i64);
        }
        BeginSearch::Keyword {
            keyword,
            start_from,
        } => {
            bulk_str(ctx, "keyword");
            bulk_str(ctx, "spec");
            ctx.array_header(4);
            bulk_str(ctx, "keyword");
            bulk_str(ctx, keyword);
            bulk_str(ctx, "startfrom");
            encode::integer(ctx.out, i64::from(start_from));
        }
        BeginSearch::Unknown => {
            bulk_str(ctx, "unknown");
            bulk_str(ctx, "spec");
            ctx.array_header(0);
        }
    }
    bulk_str(ctx, "find_keys");
    ctx.array_header(4);
    bulk_str(ctx, "type");
    match spec.find {
        FindKeys::Range {
            last_key,
            step,
            limit,
        } => {
            bulk_str(ctx, "range");
            bulk_str(ctx, "spec");
            ctx.array_header(6);
            bulk_str(ctx, "lastkey");
            encode::integer(ctx.out, i64::from(last_key));
            bulk_str(ctx, "keystep");
            encode::integer(ctx.out, step as i64);
            bulk_str(ctx, "limit");
            encode::integer(ctx.out, limit as i64);
        }
        FindKeys::Keynum {
            keynum_idx,
            first_key,
            step,
        } => {
            bulk_str(ctx, "keynum");
            bulk_str(ctx, "spec");
            ctx.array_header(6);
            bulk_str(ctx, "keynumidx");
            encode::integer(ctx.out, keynum_idx as i64);
            bulk_str(ctx, "firstkey");
            encode::integer(ctx.out, first_key as i64);
            bulk_str(ctx, "keystep");
            encode::integer(ctx.out, step as i64);
        }
        FindKeys::Unknown => {
            bulk_str(ctx, "unknown");
            bulk_str(ctx, "spec");
            ctx.array_header(0);
        }
    }
}

/// One `COMMAND INFO` entry: name, arity, flags, first key, last key,
/// step, ACL categories, tips, key specs, subcommands.
fn entry(ctx: &mut Ctx<'_>, spec: &CommandSpec) {
    ctx.array_header(10);
    bulk_str(ctx, spec.name);
    encode::integer(ctx.out, i64::from(spec.arity));
    let names: Vec<_> = flags::names(spec.flags).collect();
    ctx.array_header(names.len());
    for name in names {
        encode::simple(ctx.out, name);
    }
    encode::integer(ctx.out, i64::from(spec.first_key));
    encode::integer(ctx.out, i64::from(spec.last_key));
    encode::integer(ctx.out, i64::from(spec.step));
    let cats = implied_categories(spec);
    ctx.array_header(cats.len());
    for cat in cats {
        encode::simple(ctx.out, cat);
    }
    ctx.array_header(spec.tips.len());
    for tip in spec.tips {
        bulk_str(ctx, tip);
    }
    ctx.array_header(spec.key_specs.len());
    for ks in spec.key_specs {
        key_spec(ctx, ks);
    }
    ctx.array_header(spec.subcommands.len());
    for sub in spec.subcommands {
        entry(ctx, sub);
    }
}

/// A command or `container|sub` by name, any case.
fn by_full_name(name: &[u8]) -> Option<&'static CommandSpec> {
    match name.iter().position(|&b| b == b'|') {
        Some(bar) => {
            let container = command::lookup_name(name.get(..bar)?)?;
            command::lookup_subcommand(container, name.get(bar + 1..)?)
        }
        None => command::lookup_name(name),
    }
}

/// COMMAND: every command.
pub fn all(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.array_header(COMMANDS.len());
    for spec in COMMANDS {
        entry(ctx, spec);
    }
    Ok(Outcome::Done)
}

pub fn count(ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    ctx.int(COMMANDS.len() as i64)
}

/// COMMAND INFO [name ...]: unknown names are nil.
pub fn info(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    if args.len() == 2 {
        return all(ctx, args);
    }
    ctx.array_header(args.len() - 2);
    for name in args.rest(2) {
        match by_full_name(name) {
            Some(spec) => entry(ctx, spec),
            None => encode::null_bulk(ctx.out),
        }
    }
    Ok(Outcome::Done)
}

/// COMMAND DOCS: the node ships no command documentation, and says so.
/// (An empty doc map per command crashes redis-cli's `help @group`; on
/// this error it falls back to the help compiled into it.)
pub fn docs(_ctx: &mut Ctx<'_>, _args: &Args<'_>) -> CmdResult {
    Err(CmdError::fixed(
        "ERR COMMAND DOCS is not supported by the built-in node (it ships no command documentation)",
    ))
}

/// COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]:
/// names of commands and subcommands.
pub fn list(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let keep: Box<dyn Fn(&CommandSpec) -> bool> = match args.len() {
        2 => Box::new(|_| true),
        5 if args.is(2, "filterby") => {
            let value = args.get(4).to_vec();
            if args.is(3, "module") {
                Box::new(|_| false)
            } else if args.is(3, "aclcat") {
                let cat = format!("@{}", String::from_utf8_lossy(&value).to_ascii_lowercase());
                Box::new(move |spec| implied_categories(spec).contains(&cat.as_str()))
            } else if args.is(3, "pattern") {
                Box::new(move |spec| glob::matches(&value, spec.name.as_bytes(), true))
            } else {
                return Err(CmdError::SYNTAX);
            }
        }
        _ => return Err(CmdError::SYNTAX),
    };
    let names: Vec<&str> = all_commands()
        .filter(|spec| keep(spec))
        .map(|spec| spec.name)
        .collect();
    ctx.bulk_array(names.iter().map(|n| n.as_bytes()))
}

/// The command COMMAND GETKEYS asks about, with its key specs that name
/// real keys (`not_key` specs, such as shard channels, are left out as
/// Redis does), or Redis's error.
fn getkeys_target(
    args: &Args<'_>,
) -> Result<(Request, &'static CommandSpec, Vec<&'static KeySpec>), CmdError> {
    let sub = Request::from_args(&args.rest(2).collect::<Vec<_>>());
    let mut spec = command::lookup_name(sub.name())
        .ok_or_else(|| CmdError::fixed("ERR Invalid command specified"))?;
    if let (true, Some(name)) = (spec.is_container(), sub.arg(1)) {
        spec = command::lookup_subcommand(spec, name)
            .ok_or_else(|| CmdError::fixed("ERR Invalid command specified"))?;
    }
    let specs: Vec<&'static KeySpec> = spec
        .key_specs
        .iter()
        .filter(|ks| !ks.flags.contains(&"not_key"))
        .collect();
    if specs.is_empty() {
        return Err(CmdError::fixed("ERR The command has no key arguments"));
    }
    if !spec.arity_ok(sub.len()) {
        return Err(CmdError::fixed(
            "ERR Invalid number of arguments specified for command",
        ));
    }
    Ok((sub, spec, specs))
}

/// The keys one key spec finds in `req`, by position.
fn keys_of_spec(spec: &'static CommandSpec, ks: &'static KeySpec, req: &Request) -> Vec<usize> {
    let one = CommandSpec {
        key_specs: std::slice::from_ref(ks),
        subcommands: &[],
        ..*spec
    };
    one.keys(req)
        .map(|p| p.as_slice().to_vec())
        .unwrap_or_default()
}

fn found_keys(
    spec: &'static CommandSpec,
    specs: &[&'static KeySpec],
    req: &Request,
) -> Result<Vec<(usize, &'static KeySpec)>, CmdError> {
    let invalid = || CmdError::fixed("ERR Invalid arguments specified for command");
    // A bad key count (EVAL's numkeys...) fails the whole request.
    spec.keys(req).map_err(|_| invalid())?;
    let found: Vec<(usize, &'static KeySpec)> = specs
        .iter()
        .flat_map(|ks| {
            keys_of_spec(spec, ks, req)
                .into_iter()
                .map(move |p| (p, *ks))
        })
        .collect();
    if found.is_empty() {
        return Err(invalid());
    }
    Ok(found)
}

pub fn getkeys(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let (req, spec, specs) = getkeys_target(args)?;
    let found = found_keys(spec, &specs, &req)?;
    ctx.bulk_array(
        found
            .iter()
            .map(|(pos, _)| req.arg(*pos).unwrap_or_default()),
    )
}

pub fn getkeysandflags(ctx: &mut Ctx<'_>, args: &Args<'_>) -> CmdResult {
    let (req, spec, specs) = getkeys_target(args)?;
    let found = found_keys(spec, &specs, &req)?;
    ctx.array_header(found.len());
    for (pos, ks) in found {
        ctx.array_header(2);
        encode::bulk(ctx.out, req.arg(pos).unwrap_or_default());
        ctx.array_header(ks.flags.len());
        for flag in ks.flags {
            encode::simple(ctx.out, flag);
        }
    }
    Ok(Outcome::Done)
}
