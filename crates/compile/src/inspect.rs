//! Reading back the engine record of an artifact: the `.wasmtime.engine` ELF section that
//! wasmtime writes into every precompiled module and checks when loading it (layout in
//! wasmtime 48's `engine/serialization.rs`: a format byte, the version string, then a
//! postcard-encoded `Metadata { target, shared_flags, isa_flags, tunables, features }`).
//! Decoding goes as far as the tunables the guest must match; it is tied to
//! [`ditto_protocol::engine::MODULE_VERSION`] and refuses any other version.

use ditto_protocol::engine as e;
use object::{Object, ObjectSection};
use thiserror::Error;

/// Why an artifact's engine record could not be read.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum InspectError {
    /// Not a wasmtime precompiled core module.
    #[error("Not a wasmtime precompiled module")]
    NotAnArtifact,
    /// No `.wasmtime.engine` section.
    #[error("The artifact has no engine section")]
    NoEngineSection,
    /// Made by another wasmtime version or engine configuration.
    #[error("The artifact is for engine version {0:?}, not {ver:?}", ver = e::MODULE_VERSION)]
    OtherVersion(String),
    /// The record ends early or has an unexpected shape.
    #[error("Malformed engine record: {0}")]
    Malformed(&'static str),
}

/// The tunables recorded in an artifact that the guest must match (a prefix of wasmtime's
/// `Tunables`, in its field order).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedTunables {
    /// `memory_reservation`, bytes.
    pub memory_reservation: u64,
    /// `memory_guard_size`, bytes.
    pub memory_guard_size: u64,
    /// `memory_reservation_for_growth`, bytes (recorded, not checked).
    pub memory_reservation_for_growth: u64,
    /// `debug_native`.
    pub debug_native: bool,
    /// `debug_symbols`.
    pub debug_symbols: bool,
    /// `parse_wasm_debuginfo`.
    pub parse_wasm_debuginfo: bool,
    /// `consume_fuel`.
    pub consume_fuel: bool,
    /// `epoch_interruption`.
    pub epoch_interruption: bool,
    /// `memory_may_move`.
    pub memory_may_move: bool,
    /// `guard_before_linear_memory`.
    pub guard_before_linear_memory: bool,
    /// `table_lazy_init`.
    pub table_lazy_init: bool,
    /// `relaxed_simd_deterministic`.
    pub relaxed_simd_deterministic: bool,
    /// `signals_based_traps`.
    pub signals_based_traps: bool,
    /// `memory_init_cow`.
    pub memory_init_cow: bool,
}

/// An artifact's engine record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EngineRecord {
    /// The recorded version string ([`ditto_protocol::engine::MODULE_VERSION`]).
    pub version: String,
    /// Target triple.
    pub target: String,
    /// Cranelift ISA flags that are on, in recorded order.
    pub isa_flags_on: Vec<String>,
    /// Cranelift ISA flags that are off.
    pub isa_flags_off: Vec<String>,
    /// The tunables the loader compares.
    pub tunables: RecordedTunables,
}

/// A postcard reader over the record.
struct Rd<'a>(&'a [u8]);

impl<'a> Rd<'a> {
    fn byte(&mut self) -> Result<u8, InspectError> {
        let (b, rest) = self
            .0
            .split_first()
            .ok_or(InspectError::Malformed("truncated"))?;
        self.0 = rest;
        Ok(*b)
    }
    fn varint(&mut self) -> Result<u64, InspectError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(InspectError::Malformed("varint too long"))
    }
    fn bool(&mut self) -> Result<bool, InspectError> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(InspectError::Malformed("bad bool")),
        }
    }
    fn str(&mut self) -> Result<&'a str, InspectError> {
        let n = usize::try_from(self.varint()?).map_err(|_| InspectError::Malformed("length"))?;
        if n > self.0.len() {
            return Err(InspectError::Malformed("string past the end"));
        }
        let (s, rest) = self.0.split_at(n);
        self.0 = rest;
        core::str::from_utf8(s).map_err(|_| InspectError::Malformed("string not UTF-8"))
    }
    /// A `Vec<(&str, FlagValue)>`; returns the boolean flags as (name, value).
    fn flags(&mut self) -> Result<Vec<(&'a str, Option<bool>)>, InspectError> {
        let n = self.varint()?;
        let mut out = Vec::new();
        for _ in 0..n {
            let name = self.str()?;
            let value = match self.varint()? {
                0 => {
                    self.str()?;
                    None
                }
                1 => {
                    self.byte()?;
                    None
                }
                2 => Some(self.bool()?),
                _ => return Err(InspectError::Malformed("bad flag value")),
            };
            out.push((name, value));
        }
        Ok(out)
    }
}

/// Read the engine record of a precompiled module.
pub fn inspect(artifact: &[u8]) -> Result<EngineRecord, InspectError> {
    if wasmtime::Engine::detect_precompiled(artifact) != Some(wasmtime::Precompiled::Module) {
        return Err(InspectError::NotAnArtifact);
    }
    let file = object::File::parse(artifact).map_err(|_| InspectError::NotAnArtifact)?;
    let data = file
        .section_by_name(".wasmtime.engine")
        .ok_or(InspectError::NoEngineSection)?
        .data()
        .map_err(|_| InspectError::NoEngineSection)?;
    let mut r = Rd(data);
    if r.byte()? != 0 {
        return Err(InspectError::Malformed("unknown format byte"));
    }
    let len = usize::from(r.byte()?);
    if len > r.0.len() {
        return Err(InspectError::Malformed("version past the end"));
    }
    let (version, rest) = r.0.split_at(len);
    let version = String::from_utf8_lossy(version).into_owned();
    if version != e::MODULE_VERSION {
        return Err(InspectError::OtherVersion(version));
    }
    r.0 = rest;
    let target = r.str()?.to_string();
    r.flags()?; // shared flags
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for (name, value) in r.flags()? {
        match value {
            Some(true) => on.push(name.to_string()),
            Some(false) => off.push(name.to_string()),
            None => {}
        }
    }
    // Tunables, in wasmtime 48.0.8's field order.
    if r.varint()? != 0 {
        return Err(InspectError::Malformed("a GC collector is recorded"));
    }
    let memory_reservation = r.varint()?;
    let memory_guard_size = r.varint()?;
    let memory_reservation_for_growth = r.varint()?;
    let debug_native = r.bool()?;
    let _debug_guest = r.bool()?;
    let debug_symbols = r.bool()?;
    let parse_wasm_debuginfo = r.bool()?;
    let consume_fuel = r.bool()?;
    // `OperatorCostStrategy`: variant 1 is `Default` (no payload); 0 carries a table.
    if r.varint()? != 1 {
        return Err(InspectError::Malformed(
            "a custom fuel cost table is recorded",
        ));
    }
    let epoch_interruption = r.bool()?;
    let memory_may_move = r.bool()?;
    let guard_before_linear_memory = r.bool()?;
    let table_lazy_init = r.bool()?;
    let _generate_address_map = r.bool()?;
    let _debug_adapter_modules = r.bool()?;
    let relaxed_simd_deterministic = r.bool()?;
    let _winch_callable = r.bool()?;
    let signals_based_traps = r.bool()?;
    let memory_init_cow = r.bool()?;
    Ok(EngineRecord {
        version,
        target,
        isa_flags_on: on,
        isa_flags_off: off,
        tunables: RecordedTunables {
            memory_reservation,
            memory_guard_size,
            memory_reservation_for_growth,
            debug_native,
            debug_symbols,
            parse_wasm_debuginfo,
            consume_fuel,
            epoch_interruption,
            memory_may_move,
            guard_before_linear_memory,
            table_lazy_init,
            relaxed_simd_deterministic,
            signals_based_traps,
            memory_init_cow,
        },
    })
}
