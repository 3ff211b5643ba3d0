//! Image URLs, fetched only when the operator enables it (`--image-urls on`), and then never
//! from inside the network: the host is resolved once, every address it resolves to must be
//! public (loopback, private, link-local, carrier-grade NAT, unique-local, multicast and
//! unspecified ranges are refused, IPv4-mapped IPv6 included), and the connection is pinned to
//! the address that was checked (no second lookup a DNS rebinding could answer differently).
//! Redirects are not followed; time and bytes are capped. `on-allow-loopback` additionally
//! admits 127.0.0.0/8 and ::1, for tests that serve images from 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImageUrls {
    /// http(s) image URLs are a 400 (the default).
    #[default]
    Off,
    /// Public addresses only.
    Public,
    /// Public addresses and loopback (tests).
    PublicAndLoopback,
}

impl ImageUrls {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "off" => Self::Off,
            "on" => Self::Public,
            "on-allow-loopback" => Self::PublicAndLoopback,
            _ => return None,
        })
    }
}

const CONNECT: Duration = Duration::from_secs(5);
const TOTAL: Duration = Duration::from_secs(15);

/// Whether `ip` may be fetched from under `mode`.
pub fn allowed(ip: IpAddr, mode: ImageUrls) -> bool {
    let loopback =
        ip.is_loopback() || matches!(ip, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()));
    if loopback {
        return mode == ImageUrls::PublicAndLoopback;
    }
    match ip {
        IpAddr::V4(v4) => public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => public_v4(v4),
            None => public_v6(v6),
        },
    }
}

fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
        || a >= 240)
}

fn public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments()[0];
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (s & 0xfe00) == 0xfc00 // unique local
        || (s & 0xffc0) == 0xfe80 // link local
        || s == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
}

fn refused(param: &str, why: impl Into<String>) -> ApiError {
    ApiError::invalid(param, "invalid_image_url", why.into())
}

/// The image at `url`, under `mode`'s rules, at most `limits.max_bytes`.
pub async fn fetch(
    mode: ImageUrls,
    url: &str,
    param: &str,
    limits: tandem_vision::Limits,
) -> Result<Vec<u8>, ApiError> {
    if mode == ImageUrls::Off {
        return Err(refused(
            param,
            "This server does not fetch image URLs (the operator can enable it with --image-urls on); send the image as a data: URL or a file id.",
        ));
    }
    let u = reqwest::Url::parse(url).map_err(|e| refused(param, format!("Not a valid URL: {e}.")))?;
    let host = u
        .host_str()
        .ok_or_else(|| refused(param, "The URL has no host."))?
        .to_string();
    let port = u
        .port_or_known_default()
        .ok_or_else(|| refused(param, "The URL has no port."))?;
    let addr = resolve(&host, port, param).await?;
    if !allowed(addr.ip(), mode) {
        return Err(refused(
            param,
            format!("'{host}' is a private, loopback or reserved address; image URLs must be public."),
        ));
    }
    crate::install_crypto_provider();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .resolve(&host, addr)
        .connect_timeout(CONNECT)
        .timeout(TOTAL)
        .build()
        .map_err(|e| ApiError::internal(format!("image fetcher: {e}")))?;
    let mut r = client
        .get(u)
        .send()
        .await
        .map_err(|e| refused(param, format!("The image could not be fetched: {e}.")))?;
    if !r.status().is_success() {
        return Err(refused(param, format!("The image URL answered {}.", r.status())));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = r
        .chunk()
        .await
        .map_err(|e| refused(param, format!("The image could not be fetched: {e}.")))?
    {
        if bytes.len() + chunk.len() > limits.max_bytes {
            return Err(ApiError::invalid(
                param,
                "invalid_image",
                format!("The image is larger than {} bytes.", limits.max_bytes),
            ));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// One address for `host`; every address it resolves to must pass, so a name that mixes a
/// public and a private address is refused.
async fn resolve(host: &str, port: u16, param: &str) -> Result<SocketAddr, ApiError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    let addrs: Vec<SocketAddr> = tokio::time::timeout(CONNECT, tokio::net::lookup_host((host, port)))
        .await
        .map_err(|_| refused(param, format!("Resolving '{host}' took too long.")))?
        .map_err(|e| refused(param, format!("'{host}' could not be resolved: {e}.")))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| refused(param, format!("'{host}' has no address.")))?;
    if addrs
        .iter()
        .any(|a| !allowed(a.ip(), ImageUrls::Public) && !a.ip().is_loopback())
    {
        return Err(refused(
            param,
            format!("'{host}' resolves to a private or reserved address; image URLs must be public."),
        ));
    }
    if addrs.iter().any(|a| a.ip().is_loopback()) && addrs.iter().any(|a| !a.ip().is_loopback()) {
        return Err(refused(
            param,
            format!("'{host}' resolves to both loopback and other addresses."),
        ));
    }
    Ok(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_and_reserved_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "fe80::1",
            "fc00::1",
            "::",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(!allowed(ip.parse().unwrap(), ImageUrls::Public), "{ip}");
        }
        for ip in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert!(allowed(ip.parse().unwrap(), ImageUrls::Public), "{ip}");
        }
        assert!(allowed("127.0.0.1".parse().unwrap(), ImageUrls::PublicAndLoopback));
        assert!(!allowed("10.0.0.1".parse().unwrap(), ImageUrls::PublicAndLoopback));
    }
}
