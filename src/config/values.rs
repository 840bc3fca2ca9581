//! How a key's text becomes its type when the configuration is read: addresses, core lists,
//! anything with a `FromStr` (priorities, the recognition split), prices, `host:port` lists.
//! Each is a serde `deserialize_with` function of the sections' fields.

use crate::money::PointPrice;
use serde::{Deserialize, Deserializer};
use std::fmt::Display;
use std::net::SocketAddr;
use std::str::FromStr;

pub fn socket_address<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not an IP:port")))
}

pub fn optional_socket_address<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<SocketAddr>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|_| serde::de::Error::custom(format!("{text:?} is not empty or an IP:port")))
}

pub fn core_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<usize>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.split(',')
        .map(str::trim)
        .filter(|core| !core.is_empty())
        .map(|core| {
            core.parse().map_err(|_| {
                serde::de::Error::custom(format!(
                    "{text:?} is not empty or a comma list of core numbers"
                ))
            })
        })
        .collect()
}

/// A value of a type that parses itself (its own error says what it expects).
pub fn parsed<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}

/// As [`parsed`], with the empty text for None.
pub fn optional_parsed<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: FromStr,
    T::Err: Display,
{
    let text = String::deserialize(deserializer)?;
    if text.is_empty() {
        return Ok(None);
    }
    text.parse().map(Some).map_err(serde::de::Error::custom)
}

pub fn point_price<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PointPrice, D::Error> {
    let text = String::deserialize(deserializer)?;
    PointPrice::parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "{text:?} is not a price: a decimal with at most 6 decimals, at most 1000"
        ))
    })
}

pub fn host_port_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<(String, u16)>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let parsed = entry
                .rsplit_once(':')
                .and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?)))
                .filter(|(host, _)| !host.is_empty());
            parsed
                .map(|(host, port)| (host.to_ascii_lowercase(), port))
                .ok_or_else(|| serde::de::Error::custom(format!("{entry:?} is not host:port")))
        })
        .collect()
}

/// A comma list of browser origins (`scheme://host[:port]`, no path), lower-cased.
pub fn origin_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.split(',')
        .map(str::trim)
        .filter(|entry| !entry.is_empty())
        .map(|entry| {
            let rest = entry
                .strip_prefix("https://")
                .or_else(|| entry.strip_prefix("http://"));
            match rest {
                Some(host) if !host.is_empty() && !host.contains('/') => {
                    Ok(entry.to_ascii_lowercase())
                }
                _ => Err(serde::de::Error::custom(format!(
                    "{entry:?} is not an origin (scheme://host[:port])"
                ))),
            }
        })
        .collect()
}
