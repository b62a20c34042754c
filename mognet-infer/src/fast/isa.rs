//! Tests of kernels that need an instruction set: they run where the CPU has it, say so
//! visibly where it has not, and fail instead when `MOGNET_REQUIRE_ISA` names it (CI sets it
//! from `/proc/cpuinfo`), so that a green run on a capable machine means the kernels ran.

use std::io::Write as _;

use super::Variant;

/// The environment variable: variant names (`avx512-vnni`, `avx512`, `avx2`), comma-separated.
pub const REQUIRE_ISA: &str = "MOGNET_REQUIRE_ISA";

/// What a test needing `variant` does, given whether the CPU has it and the variable's value:
/// `Ok(true)` run, `Ok(false)` skip, `Err` fail with the message.
pub fn decide(variant: Variant, available: bool, required: Option<&str>) -> Result<bool, String> {
    if available {
        return Ok(true);
    }
    let named =
        required.is_some_and(|list| list.split(',').any(|name| name.trim() == variant.name()));
    if named {
        return Err(format!(
            "{REQUIRE_ISA} names {} but this CPU cannot run it",
            variant.name()
        ));
    }
    Ok(false)
}

/// Whether a test needing `variant` runs here; panics when it is required but missing, and
/// writes a line past the test harness's capture when it is skipped.
pub fn test_needs(variant: Variant, test: &str) -> bool {
    let required = std::env::var(REQUIRE_ISA).ok();
    match decide(variant, variant.is_available(), required.as_deref()) {
        Ok(true) => true,
        Ok(false) => {
            // Straight to the handle: the harness captures only the print macros.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: this CPU cannot run {} (set {REQUIRE_ISA} to make this a failure)",
                variant.name()
            );
            false
        }
        Err(message) => panic!("{test}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_required_missing_instruction_set_fails_and_an_unrequired_one_skips() {
        let vnni = Variant::Avx512Vnni;
        assert_eq!(decide(vnni, true, None), Ok(true));
        assert_eq!(decide(vnni, true, Some("avx512-vnni")), Ok(true));
        assert_eq!(decide(vnni, false, None), Ok(false));
        assert_eq!(decide(vnni, false, Some("avx2")), Ok(false));
        let err = decide(vnni, false, Some("avx2, avx512-vnni")).unwrap_err();
        assert!(err.contains("avx512-vnni"), "{err}");
        assert!(decide(Variant::Avx512, false, Some("avx512")).is_err());
        // "avx512" does not name "avx512-vnni".
        assert_eq!(decide(vnni, false, Some("avx512")), Ok(false));
    }
}
