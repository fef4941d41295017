//! Exit codes of os4x programs (`sysexits.h` where one fits), so scripts and
//! systemd (`RestartPreventExitStatus=`) can tell failures apart.

/// Normal end.
pub const OK: u8 = 0;
/// Failed after starting (details in the log); `os4x-pidctl reset` refused.
pub const FAILURE: u8 = 1;
/// Command-line usage error (clap's code).
pub const USAGE: u8 = 2;
/// Internal error (`EX_SOFTWARE`).
pub const SOFTWARE: u8 = 70;
/// The operating system refused a resource, e.g. threads (`EX_OSERR`).
pub const OSERR: u8 = 71;
/// The PID file could not be created (`EX_CANTCREAT`).
pub const CANTCREAT: u8 = 73;
/// The database could not be opened or read (`EX_IOERR`).
pub const IOERR: u8 = 74;
/// Another instance runs, or the database stayed locked (`EX_TEMPFAIL`).
pub const TEMPFAIL: u8 = 75;
/// The configuration is invalid (`EX_CONFIG`).
pub const CONFIG: u8 = 78;
