//! The `soctype` field: the i.MX families this service signs for.

use poem_openapi::Enum;

/// An i.MX SoC family whose boot ROM authenticates images with HAB4, the
/// scheme NXP's CST 3.x signs for with a HAB4 CSF. (The AHAB families,
/// i.MX 8/8X, 8ULP and 9, take a signed container instead; not offered.)
/// `soctype` selects nothing in CST itself, as upstream: it states which
/// scheme the client's CSF is for, so a CSF for AHAB is refused up front.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum SocType {
    /// i.MX 6 (any: 6Q/6DL/6S/6SL/6SLL/6SX/6UL/6ULL/6ULZ).
    Mx6,
    /// i.MX 6Quad/6Dual.
    Mx6q,
    /// i.MX 6DualLite/6Solo.
    Mx6dl,
    /// i.MX 6SoloLite.
    Mx6sl,
    /// i.MX 6SLL.
    Mx6sll,
    /// i.MX 6SoloX.
    Mx6sx,
    /// i.MX 6UltraLite.
    Mx6ul,
    /// i.MX 6ULL.
    Mx6ull,
    /// i.MX 6ULZ.
    Mx6ulz,
    /// i.MX 7Dual/7Solo.
    Mx7d,
    /// i.MX 7ULP.
    Mx7ulp,
    /// i.MX 8M family, as upstream names it (8M Quad, Mini, Nano, Plus).
    Mx8m,
    /// i.MX 8M Quad.
    Mx8mq,
    /// i.MX 8M Mini.
    Mx8mm,
    /// i.MX 8M Nano.
    Mx8mn,
    /// i.MX 8M Plus.
    Mx8mp,
}

impl SocType {
    /// The name as the field carries it.
    pub fn name(self) -> &'static str {
        match self {
            SocType::Mx6 => "mx6",
            SocType::Mx6q => "mx6q",
            SocType::Mx6dl => "mx6dl",
            SocType::Mx6sl => "mx6sl",
            SocType::Mx6sll => "mx6sll",
            SocType::Mx6sx => "mx6sx",
            SocType::Mx6ul => "mx6ul",
            SocType::Mx6ull => "mx6ull",
            SocType::Mx6ulz => "mx6ulz",
            SocType::Mx7d => "mx7d",
            SocType::Mx7ulp => "mx7ulp",
            SocType::Mx8m => "mx8m",
            SocType::Mx8mq => "mx8mq",
            SocType::Mx8mm => "mx8mm",
            SocType::Mx8mn => "mx8mn",
            SocType::Mx8mp => "mx8mp",
        }
    }
}
