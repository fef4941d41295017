//! Reason codes of ESID, SFNA, EFNA and NERP with the RFC 5024 wording.
//!
//! Each enum keeps codes it does not know as `Other(code)`: partners on
//! newer revisions may send codes this crate has never heard of, and
//! refusing the whole command over that would be worse than passing the
//! number on.

use std::fmt;

macro_rules! reason_enum {
    (
        $(#[$meta:meta])*
        $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum $name {
            $(
                #[doc = concat!("`", stringify!($code), "`: ", $text)]
                $(#[$vmeta])*
                $variant,
            )*
            /// A code RFC 5024 does not define (kept as received).
            Other(u8),
        }

        impl $name {
            /// All codes RFC 5024 defines, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant),*];

            /// The numeric code (two digits on the wire).
            pub const fn code(self) -> u8 {
                match self {
                    $($name::$variant => $code,)*
                    $name::Other(c) => c,
                }
            }

            /// From the numeric code; unknown codes are preserved.
            pub const fn from_code(code: u8) -> Self {
                match code {
                    $($code => $name::$variant,)*
                    c => $name::Other(c),
                }
            }

            /// The RFC's text for the code.
            pub const fn description(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                    $name::Other(_) => "Reason code not defined by RFC 5024",
                }
            }

            /// Whether RFC 5024 defines this code.
            pub const fn is_known(self) -> bool {
                !matches!(self, $name::Other(_))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{:02} ({})", self.code(), self.description())
            }
        }
    };
}

reason_enum!(
    /// End session reason (ESIDREAS), RFC 5024 section 5.3.11.
    EndSessionReason {
        /// Used when a session ends after all work is done.
        Normal = 0 => "Normal session termination",
        /// An Exchange Buffer contains an invalid command code (1st octet of
        /// the buffer).
        CommandNotRecognised = 1 => "Command not recognised",
        /// An Exchange Buffer contains an invalid command for the current
        /// state of the receiver.
        ProtocolViolation = 2 => "Protocol violation",
        /// A Start Session (SSID) command contains an unknown or invalid
        /// Identification Code.
        UserCodeNotKnown = 3 => "User code not known",
        /// A Start Session (SSID) command contained an invalid password.
        InvalidPassword = 4 => "Invalid password",
        /// The local site has entered an emergency close down mode.
        LocalSiteEmergencyCloseDown = 5 => "Local site emergency close down",
        /// A field within a Command Exchange Buffer contains invalid data.
        CommandContainedInvalidData = 6 => "Command contained invalid data",
        /// The length of the Exchange Buffer as determined by the Stream
        /// Transmission Header differs from the length implied by the
        /// Command Code.
        ExchangeBufferSizeError = 7 => "Exchange Buffer size error",
        /// The request for connection has been denied due to a resource
        /// shortage; the connection attempt should be retried later.
        ResourcesNotAvailable = 8 => "Resources not available",
        /// A timer expired.
        TimeOut = 9 => "Time out",
        /// The partners' modes or capabilities do not fit together.
        ModeOrCapabilitiesIncompatible = 10 => "Mode or capabilities incompatible",
        /// The AURP did not match the challenge.
        InvalidChallengeResponse = 11 => "Invalid challenge response",
        /// One side requires secure authentication and the other does not.
        SecureAuthenticationRequirementsIncompatible = 12 =>
            "Secure authentication requirements incompatible",
        /// An error was detected for which no specific code is defined.
        Unspecified = 99 => "Unspecified Abort code",
    }
);

reason_enum!(
    /// Start file refusal reason (SFNAREAS), RFC 5024 section 5.3.5.
    StartFileRefusal {
        InvalidFilename = 1 => "Invalid filename",
        InvalidDestination = 2 => "Invalid destination",
        InvalidOrigin = 3 => "Invalid origin",
        RecordFormatNotSupported = 4 => "Storage record format not supported",
        MaxRecordLengthNotSupported = 5 => "Maximum record length not supported",
        FileSizeTooBig = 6 => "File size is too big",
        InvalidRecordCount = 10 => "Invalid record count",
        InvalidByteCount = 11 => "Invalid byte count",
        AccessMethodFailure = 12 => "Access method failure",
        DuplicateFile = 13 => "Duplicate file",
        FileDirectionRefused = 14 => "File direction refused",
        CipherSuiteNotSupported = 15 => "Cipher suite not supported",
        EncryptedFileNotAllowed = 16 => "Encrypted file not allowed",
        UnencryptedFileNotAllowed = 17 => "Unencrypted file not allowed",
        CompressionNotAllowed = 18 => "Compression not allowed",
        SignedFileNotAllowed = 19 => "Signed file not allowed",
        UnsignedFileNotAllowed = 20 => "Unsigned file not allowed",
        Unspecified = 99 => "Unspecified reason",
    }
);

reason_enum!(
    /// End file refusal reason (EFNAREAS), RFC 5024 section 5.3.10.
    EndFileRefusal {
        InvalidFilename = 1 => "Invalid filename",
        InvalidDestination = 2 => "Invalid destination",
        InvalidOrigin = 3 => "Invalid origin",
        RecordFormatNotSupported = 4 => "Storage record format not supported",
        MaxRecordLengthNotSupported = 5 => "Maximum record length not supported",
        FileSizeTooBig = 6 => "File size is too big",
        InvalidRecordCount = 10 => "Invalid record count",
        InvalidByteCount = 11 => "Invalid byte count",
        AccessMethodFailure = 12 => "Access method failure",
        DuplicateFile = 13 => "Duplicate file",
        FileDirectionRefused = 14 => "File direction refused",
        CipherSuiteNotSupported = 15 => "Cipher suite not supported",
        EncryptedFileNotAllowed = 16 => "Encrypted file not allowed",
        UnencryptedFileNotAllowed = 17 => "Unencrypted file not allowed",
        CompressionNotAllowed = 18 => "Compression not allowed",
        SignedFileNotAllowed = 19 => "Signed file not allowed",
        UnsignedFileNotAllowed = 20 => "Unsigned file not allowed",
        InvalidFileSignature = 21 => "Invalid file signature",
        FileDecryptionFailure = 22 => "File decryption failure",
        FileDecompressionFailure = 23 => "File decompression failure",
        Unspecified = 99 => "Unspecified reason",
    }
);

reason_enum!(
    /// Negative end response reason (NERPREAS), RFC 5024 section 5.3.14.
    ///
    /// "SFNA(RETRY=N)" means "EFNA or SFNA(RETRY=N)" where appropriate.
    NerpReason {
        EsidUserCodeNotKnown = 3 => "ESID received with reason code '03' (user code not known)",
        EsidInvalidPassword = 4 => "ESID received with reason code '04' (invalid password)",
        EsidUnspecified = 9 => "ESID received with reason code '99' (unspecified reason)",
        InvalidFileName = 11 => "SFNA(RETRY=N) received with reason code '01' (invalid file name)",
        InvalidDestination = 12 =>
            "SFNA(RETRY=N) received with reason code '02' (invalid destination)",
        InvalidOrigin = 13 => "SFNA(RETRY=N) received with reason code '03' (invalid origin)",
        InvalidRecordFormat = 14 =>
            "SFNA(RETRY=N) received with reason code '04' (invalid storage record format)",
        MaxRecordLengthNotSupported = 15 =>
            "SFNA(RETRY=N) received with reason code '05' (maximum record length not supported)",
        FileSizeTooBig = 16 => "SFNA(RETRY=N) received with reason code '06' (file size too big)",
        InvalidRecordCount = 20 =>
            "SFNA(RETRY=N) received with reason code '10' (invalid record count)",
        InvalidByteCount = 21 =>
            "SFNA(RETRY=N) received with reason code '11' (invalid byte count)",
        AccessMethodFailure = 22 =>
            "SFNA(RETRY=N) received with reason code '12' (access method failure)",
        DuplicateFile = 23 => "SFNA(RETRY=N) received with reason code '13' (duplicate file)",
        FileDirectionRefused = 24 =>
            "SFNA(RETRY=N) received with reason code '14' (file direction refused)",
        CipherSuiteNotSupported = 25 =>
            "SFNA(RETRY=N) received with reason code '15' (cipher suite not supported)",
        EncryptedFileNotAllowed = 26 =>
            "SFNA(RETRY=N) received with reason code '16' (encrypted file not allowed)",
        UnencryptedFileNotAllowed = 27 =>
            "SFNA(RETRY=N) received with reason code '17' (unencrypted file not allowed)",
        CompressionNotAllowed = 28 =>
            "SFNA(RETRY=N) received with reason code '18' (compression not allowed)",
        SignedFileNotAllowed = 29 =>
            "SFNA(RETRY=N) received with reason code '19' (signed file not allowed)",
        UnsignedFileNotAllowed = 30 =>
            "SFNA(RETRY=N) received with reason code '20' (unsigned file not allowed)",
        FileSignatureNotValid = 31 => "File signature not valid",
        FileDecompressionFailed = 32 => "File decompression failed",
        FileDecryptionFailed = 33 => "File decryption failed",
        FileProcessingFailed = 34 => "File processing failed",
        NotDelivered = 35 => "Not delivered to recipient",
        NotAcknowledged = 36 => "Not acknowledged by recipient",
        StoppedByOperator = 50 => "Transmission stopped by the operator",
        FileSizeIncompatible = 90 => "File size incompatible with recipient's protocol version",
        Unspecified = 99 => "Unspecified reason",
    }
);

impl NerpReason {
    /// The NERP reason to report when a partner refused a file at start
    /// (SFNA with retry = N) for `r`.
    pub const fn from_start_file_refusal(r: StartFileRefusal) -> NerpReason {
        match r.code() {
            1..=6 | 10..=20 => NerpReason::from_code(r.code() + 10),
            _ => NerpReason::Unspecified,
        }
    }

    /// The NERP reason to report when a partner refused a file at its end
    /// (EFNA) for `r`.
    pub const fn from_end_file_refusal(r: EndFileRefusal) -> NerpReason {
        match r {
            EndFileRefusal::InvalidFileSignature => NerpReason::FileSignatureNotValid,
            EndFileRefusal::FileDecryptionFailure => NerpReason::FileDecryptionFailed,
            EndFileRefusal::FileDecompressionFailure => NerpReason::FileDecompressionFailed,
            _ => match r.code() {
                1..=6 | 10..=20 => NerpReason::from_code(r.code() + 10),
                _ => NerpReason::Unspecified,
            },
        }
    }

    /// The NERP reason to report when a session ended with `r`, if the RFC
    /// defines one.
    pub const fn from_end_session_reason(r: EndSessionReason) -> Option<NerpReason> {
        match r {
            EndSessionReason::UserCodeNotKnown => Some(NerpReason::EsidUserCodeNotKnown),
            EndSessionReason::InvalidPassword => Some(NerpReason::EsidInvalidPassword),
            EndSessionReason::Unspecified => Some(NerpReason::EsidUnspecified),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_preserved() {
        for r in EndSessionReason::ALL {
            assert_eq!(EndSessionReason::from_code(r.code()), *r);
        }
        for r in NerpReason::ALL {
            assert_eq!(NerpReason::from_code(r.code()), *r);
        }
        assert_eq!(EndSessionReason::from_code(13), EndSessionReason::Other(13));
        assert_eq!(EndSessionReason::Other(13).code(), 13);
        assert_eq!(
            EndFileRefusal::from_code(23).description(),
            "File decompression failure"
        );
        assert_eq!(StartFileRefusal::from_code(21), StartFileRefusal::Other(21));
        assert_eq!(EndSessionReason::ALL.len(), 14);
        assert_eq!(StartFileRefusal::ALL.len(), 18);
        assert_eq!(EndFileRefusal::ALL.len(), 21);
        assert_eq!(NerpReason::ALL.len(), 29);
    }

    #[test]
    fn nerp_mapping_follows_rfc_table() {
        assert_eq!(
            NerpReason::from_start_file_refusal(StartFileRefusal::DuplicateFile),
            NerpReason::DuplicateFile
        );
        assert_eq!(
            NerpReason::from_start_file_refusal(StartFileRefusal::UnsignedFileNotAllowed),
            NerpReason::UnsignedFileNotAllowed
        );
        assert_eq!(
            NerpReason::from_end_file_refusal(EndFileRefusal::InvalidFileSignature),
            NerpReason::FileSignatureNotValid
        );
        assert_eq!(
            NerpReason::from_end_session_reason(EndSessionReason::InvalidPassword),
            Some(NerpReason::EsidInvalidPassword)
        );
        assert_eq!(format!("{}", EndSessionReason::TimeOut), "09 (Time out)");
    }
}
