//! Field checks shared by commands. Each returns a [`DomainError::InvalidField`] naming the field.

use serde::{Deserialize, Serialize};

use crate::DomainError;

/// Longest order description, in characters (not bytes).
pub const MAX_DESCRIPTION_CHARS: usize = 500;
/// Longest reason, comment or address, in characters.
pub const MAX_SHORT_TEXT_CHARS: usize = 200;
/// Longest close-out note, in characters.
pub const MAX_NOTE_CHARS: usize = 1000;
/// Most evidence photos on one completion.
pub const MAX_PHOTOS: usize = 9;
/// Largest page of a list (`limit`); a larger one is refused, not silently cut.
pub const MAX_PAGE_SIZE: u32 = 500;
/// Longest identifier (order, team, station, volunteer ids).
pub const MAX_ID_CHARS: usize = 64;

/// WGS-84 coordinates and an address. diandan serves mainland China, so coordinates outside
/// its bounding box are refused as the typo they almost always are (e.g. lat/lng swapped).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    pub lat: f64,
    pub lng: f64,
    #[serde(default)]
    pub address: String,
}

impl Location {
    pub fn validate(&self, field: &'static str) -> Result<(), DomainError> {
        let (lat_ok, lng_ok) = (
            self.lat.is_finite() && (3.8..=53.6).contains(&self.lat),
            self.lng.is_finite() && (73.4..=135.1).contains(&self.lng),
        );
        if !lat_ok || !lng_ok {
            return Err(DomainError::invalid(
                field,
                format!(
                    "坐标无效（纬度 {}，经度 {}）：须为中国境内的 WGS-84 坐标",
                    self.lat, self.lng
                ),
            ));
        }
        text(field, &self.address, 0, MAX_SHORT_TEXT_CHARS)?;
        Ok(())
    }
}

/// Trimmed text of `min..=max` characters.
pub fn text(
    field: &'static str,
    value: &str,
    min: usize,
    max: usize,
) -> Result<String, DomainError> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars < min {
        return Err(DomainError::invalid(field, "不能为空"));
    }
    if chars > max {
        return Err(DomainError::invalid(
            field,
            format!("过长：{chars} 字，最多 {max} 字"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// An identifier: 1–64 characters of ASCII letters, digits, `-` and `_`.
pub fn id(field: &'static str, value: &str) -> Result<(), DomainError> {
    if value.is_empty() {
        return Err(DomainError::invalid(field, "不能为空"));
    }
    if value.len() > MAX_ID_CHARS
        || !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(DomainError::invalid(
            field,
            "只能包含字母、数字、- 和 _，最多 64 个字符",
        ));
    }
    Ok(())
}

/// A mainland mobile number: 11 digits starting with 1.
pub fn phone(field: &'static str, value: &str) -> Result<(), DomainError> {
    let ok =
        value.len() == 11 && value.starts_with('1') && value.bytes().all(|b| b.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(DomainError::invalid(field, "须为 11 位手机号码"))
    }
}

/// `13812345678` → `138****5678`: enough to recognise, not enough to call.
pub fn mask_phone(value: &str) -> String {
    if value.len() == 11 && value.is_ascii() {
        format!("{}****{}", &value[..3], &value[7..])
    } else {
        "****".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_counts_characters_not_bytes() {
        let chinese = "排".repeat(MAX_DESCRIPTION_CHARS);
        assert!(text("description", &chinese, 1, MAX_DESCRIPTION_CHARS).is_ok());
        let too_long = "排".repeat(MAX_DESCRIPTION_CHARS + 1);
        assert!(text("description", &too_long, 1, MAX_DESCRIPTION_CHARS).is_err());
        assert!(text("description", "   ", 1, 10).is_err());
    }

    #[test]
    fn coordinates_outside_china_are_refused() {
        let ok = Location {
            lat: 29.85,
            lng: 114.32,
            address: String::new(),
        };
        assert!(ok.validate("location").is_ok());
        let swapped = Location {
            lat: 114.32,
            lng: 29.85,
            address: String::new(),
        };
        assert!(swapped.validate("location").is_err());
        let nan = Location {
            lat: f64::NAN,
            lng: 114.0,
            address: String::new(),
        };
        assert!(nan.validate("location").is_err());
    }

    #[test]
    fn phones() {
        assert!(phone("contact_phone", "13812345678").is_ok());
        assert!(phone("contact_phone", "1381234567").is_err());
        assert!(phone("contact_phone", "2381234567a").is_err());
        assert_eq!(mask_phone("13812345678"), "138****5678");
    }
}
