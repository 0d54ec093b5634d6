"""Which proxy a URL goes through: the variables read as httpx reads them, NO_PROXY matching."""

from __future__ import annotations

import pytest

from quartermaster.core.errors import InvalidInput
from quartermaster.core.proxies import ProxySettings

PROXY = "http://proxy.test:3128"


def proxy_url(environ: dict[str, str], url: str) -> str | None:
    proxy = ProxySettings.from_environment(environ).proxy_for(url)
    return proxy.url if proxy is not None else None


def test_each_scheme_takes_its_own_variable() -> None:
    env = {"HTTPS_PROXY": "http://secure.test:1", "HTTP_PROXY": "http://plain.test:2"}
    assert proxy_url(env, "https://dp.example/content") == "http://secure.test:1"
    assert proxy_url(env, "http://dp.example/content") == "http://plain.test:2"


def test_all_proxy_is_the_fallback_for_both_schemes() -> None:
    env = {"ALL_PROXY": "http://all.test:3", "HTTP_PROXY": "http://plain.test:2"}
    assert proxy_url(env, "https://dp.example") == "http://all.test:3"
    assert proxy_url(env, "http://dp.example") == "http://plain.test:2"


def test_lower_case_wins_and_an_empty_lower_case_variable_hides_the_upper_case_one() -> None:
    assert proxy_url({"https_proxy": "low.test:1", "HTTPS_PROXY": PROXY}, "https://x") == (
        "http://low.test:1"
    )
    assert proxy_url({"https_proxy": "", "HTTPS_PROXY": PROXY}, "https://x") is None


def test_a_proxy_names_the_variable_it_came_from_and_hides_its_password() -> None:
    env = {"https_proxy": "http://user:s%40cret@proxy.test:8080"}
    proxy = ProxySettings.from_environment(env).proxy_for("https://dp.example")
    assert proxy is not None
    assert str(proxy) == "the proxy http://proxy.test:8080 (from https_proxy)"
    assert "cret" not in str(proxy) and "cret" not in proxy.url
    assert proxy.url_with_credentials == "http://user:s@cret@proxy.test:8080"
    assert proxy.authorization == "Basic dXNlcjpzQGNyZXQ="  # base64 of user:s@cret


def test_a_bare_host_and_port_is_an_http_proxy_on_port_80_by_default() -> None:
    assert proxy_url({"HTTP_PROXY": "proxy.test"}, "http://x") == "http://proxy.test:80"


def test_http_proxy_is_ignored_in_a_cgi_request_where_a_header_could_set_it() -> None:
    env = {"HTTP_PROXY": PROXY, "REQUEST_METHOD": "GET"}
    assert proxy_url(env, "http://dp.example") is None
    assert proxy_url({**env, "http_proxy": PROXY}, "http://dp.example") == PROXY


@pytest.mark.parametrize(
    "value", ["socks5://proxy.test:1080", "https://proxy.test:3128", "http://proxy.test:port"]
)
def test_a_proxy_that_cannot_be_used_is_a_clear_error(value: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        ProxySettings.from_environment({"HTTPS_PROXY": value})
    assert "HTTPS_PROXY" in caught.value.message
    assert "http://proxy.example:3128" in caught.value.hint


@pytest.mark.parametrize(
    ("no_proxy", "url", "direct"),
    [
        ("*", "https://anything.example", True),
        ("other.test, *", "https://anything.example", True),
        ("example.com", "https://example.com", True),
        ("example.com", "https://dp.example.com", True),
        ("example.com", "https://wwwexample.com", False),
        (".example.com", "https://dp.example.com", True),
        (".example.com", "https://example.com", False),
        ("*.example.com", "https://dp.example.com", True),
        ("*.example.com", "https://example.com", False),
        ("EXAMPLE.com", "https://DP.Example.COM", True),
        ("localhost", "http://localhost:8441", True),
        ("localhost", "http://sub.localhost:8441", False),
        ("10.1.2.3", "https://10.1.2.3:8441", True),
        ("10.1.2.3", "https://10.1.2.4:8441", False),
        ("10.0.0.0/8", "https://10.200.3.4", True),
        ("10.0.0.0/8", "https://11.0.0.1", False),
        ("10.0.0.0/8", "https://ten.example", False),  # host names are not looked up
        ("::1", "http://[::1]:8441", True),
        ("fd00::/8", "http://[fd12::5]/", True),
        ("fd00::/8", "http://[fe80::5]/", False),
        ("example.com:8441", "https://example.com:8441", True),
        ("example.com:8441", "https://example.com:443", False),
        ("127.0.0.1:8441", "http://127.0.0.1:8441", True),
        ("127.0.0.1:8441", "http://127.0.0.1:8440", False),
        ("[::1]:8441", "http://[::1]:8441", True),
        ("http://example.com", "http://example.com", True),
        ("http://example.com", "https://example.com", False),
        ("all://example.com", "https://example.com", True),
        ("", "https://example.com", False),
        (" , ,", "https://example.com", False),
    ],
)
def test_no_proxy_sends_hosts_domains_addresses_and_ranges_direct(
    no_proxy: str, url: str, direct: bool
) -> None:
    env = {"HTTPS_PROXY": PROXY, "HTTP_PROXY": PROXY, "NO_PROXY": no_proxy}
    assert (proxy_url(env, url) is None) is direct


def test_without_proxy_variables_every_url_is_direct() -> None:
    settings = ProxySettings.from_environment({"PATH": "/usr/bin"})
    assert settings.proxy_for("https://dp.example") is None
    assert settings.proxy_for("http://127.0.0.1:8441") is None


def test_a_url_that_names_no_port_one_can_use_is_not_sent_to_the_proxy() -> None:
    settings = ProxySettings.from_environment({"HTTP_PROXY": PROXY})
    assert settings.proxy_for("http://dp.example:notaport/") is None
    assert settings.proxy_for("ftp://dp.example/") is None
