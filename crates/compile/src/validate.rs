//! Full validation of a module against Ditto's function contract, with wasmparser (the
//! same version wasmtime 48 uses) and the protocol's WebAssembly feature set: every section
//! and every function body, then the contract: `_start: () -> ()` exported, imports only
//! from `wasi_snapshot_preview1` and only functions, at most
//! [`ditto_protocol::engine::MAX_MODULE_BYTES`].

use crate::config::wasm_features;
use crate::CompileError;
use ditto_protocol::engine as e;
use wasmparser::{
    BinaryReaderError, Encoding, ExternalKind, FuncValidatorAllocations, Parser, Payload, TypeRef,
    ValidPayload, Validator,
};

/// What parsing gathers for the contract checks.
#[derive(Default)]
struct Info {
    /// (module, name, is a function) per import.
    imports: Vec<(String, String, bool)>,
    exports: Vec<String>,
    /// `_start`'s index and whether it is a function export.
    start_index: Option<(u32, bool)>,
    functions: u32,
    memory_min_pages: Option<u64>,
    memory_max_pages: Option<u64>,
}

/// What validation learned about a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModuleInfo {
    /// Module size, bytes.
    pub size: usize,
    /// Functions defined by the module (not imported).
    pub functions: u32,
    /// The WASI functions it imports, in module order.
    pub wasi_imports: Vec<String>,
    /// Names of all its exports.
    pub exports: Vec<String>,
    /// Initial size of its memory 0, in 64 KiB pages (if it has one).
    pub memory_min_pages: Option<u64>,
    /// Declared maximum of its memory 0, in pages.
    pub memory_max_pages: Option<u64>,
}

fn invalid(e: BinaryReaderError) -> CompileError {
    CompileError::Invalid {
        message: e.message().to_string(),
        offset: e.offset(),
    }
}

/// Validate `module` completely and check Ditto's function contract.
pub fn validate(module: &[u8]) -> Result<ModuleInfo, CompileError> {
    if module.len() > e::MAX_MODULE_BYTES {
        return Err(CompileError::TooLarge {
            size: module.len(),
            max: e::MAX_MODULE_BYTES,
        });
    }
    if !module.starts_with(b"\0asm") {
        return Err(CompileError::NotWasm);
    }
    let mut validator = Validator::new_with_features(wasm_features());
    let mut allocs = FuncValidatorAllocations::default();
    let mut info = Info::default();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.map_err(invalid)?;
        if let Payload::Version {
            encoding: Encoding::Component,
            ..
        } = &payload
        {
            return Err(CompileError::Component);
        }
        match &payload {
            Payload::ImportSection(reader) => {
                for import in reader.clone().into_imports() {
                    let import = import.map_err(invalid)?;
                    info.imports.push((
                        import.module.to_string(),
                        import.name.to_string(),
                        matches!(import.ty, TypeRef::Func(_)),
                    ));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader.clone() {
                    let export = export.map_err(invalid)?;
                    if export.name == e::ENTRY_POINT {
                        info.start_index = Some((
                            export.index,
                            matches!(export.kind, ExternalKind::Func | ExternalKind::FuncExact),
                        ));
                    }
                    info.exports.push(export.name.to_string());
                }
            }
            Payload::MemorySection(reader) => {
                if let Some(Ok(m)) = reader.clone().into_iter().next() {
                    info.memory_min_pages = Some(m.initial);
                    info.memory_max_pages = m.maximum;
                }
            }
            Payload::FunctionSection(reader) => info.functions = reader.count(),
            _ => {}
        }
        match validator.payload(&payload).map_err(invalid)? {
            ValidPayload::Func(func, body) => {
                let mut v = func.into_validator(std::mem::take(&mut allocs));
                v.validate(&body).map_err(invalid)?;
                allocs = v.into_allocations();
            }
            ValidPayload::End(types) => {
                let t = types.as_ref();
                check_contract(&info, |index| {
                    // The export index was validated; the bound check is belt and braces.
                    index < t.function_count() && {
                        let f = types[t.core_function_at(index)].unwrap_func();
                        f.params().is_empty() && f.results().is_empty()
                    }
                })?;
            }
            _ => {}
        }
    }
    Ok(ModuleInfo {
        size: module.len(),
        functions: info.functions,
        wasi_imports: info.imports.into_iter().map(|(_, n, _)| n).collect(),
        exports: info.exports,
        memory_min_pages: info.memory_min_pages,
        memory_max_pages: info.memory_max_pages,
    })
}

/// The contract checks, once the whole module validated. `is_unit_fn(i)` tells whether
/// function `i` has type `() -> ()`.
fn check_contract(info: &Info, is_unit_fn: impl Fn(u32) -> bool) -> Result<(), CompileError> {
    for (module, name, is_func) in &info.imports {
        if module != e::WASI_MODULE {
            return Err(CompileError::ForeignImport {
                module: module.clone(),
                name: name.clone(),
            });
        }
        if !is_func {
            return Err(CompileError::NonFunctionImport(name.clone()));
        }
    }
    match info.start_index {
        None => Err(CompileError::NoStart),
        Some((_, false)) => Err(CompileError::BadStart("is not a function".into())),
        Some((index, true)) if !is_unit_fn(index) => {
            Err(CompileError::BadStart("has parameters or results".into()))
        }
        Some(_) => Ok(()),
    }
}
