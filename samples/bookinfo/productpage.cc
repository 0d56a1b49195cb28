// productpage: the page a reader sees, built from details and reviews, and the JSON API behind
// it, as Istio's productpage (Python) serves them. A failing or slow upstream costs only its
// section of the page. Signing in sets the `user` cookie; every upstream call then carries
// `end-user: <name>`, the header Istio's routing rules match (reviews v2 for jason).
#include <algorithm>
#include <boost/json.hpp>
#include <cctype>
#include <string>

#include "core/http/headers.h"
#include "samples/bookinfo/services.h"

namespace mesh::bookinfo {
namespace {

constexpr char kTitle[] = "The Comedy of Errors";
constexpr char kDescriptionHtml[] =
    "<a href=\"https://en.wikipedia.org/wiki/The_Comedy_of_Errors\">Wikipedia Summary</a>: The "
    "Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and "
    "one of his most farcical comedies, with a major part of the humour coming from slapstick and "
    "mistaken identity, in addition to puns and word play.";

ServerResponse json(int status, std::string body) {
  return {status, "application/json", std::move(body), {}};
}

ServerResponse redirect(std::string location, std::string cookie) {
  return {302,
          "text/html",
          "<a href=\"" + htmlEscape(location) + "\">redirecting</a>\n",
          {{"location", location}, {"set-cookie", std::move(cookie)}}};
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded and cookie values: %XX escapes ('+' is a space in forms).
std::string percentDecode(std::string_view s, bool plus_is_space) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && hexValue(s[i + 1]) >= 0 && hexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(hexValue(s[i + 1]) * 16 + hexValue(s[i + 2]));
      i += 2;
    } else if (s[i] == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += s[i];
    }
  }
  return out;
}

// Everything but unreserved characters as %XX, so that any name survives as a cookie value.
std::string percentEncode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += kHex[u >> 4];
      out += kHex[u & 15];
    }
  }
  return out;
}

// The value of `name` in "a=1&b=2" (form) or "a=1; b=2" (cookie), decoded; "" when absent.
std::string findParam(std::string_view text, std::string_view name, char separator, bool form) {
  while (!text.empty()) {
    size_t end = text.find(separator);
    std::string_view item = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    size_t eq = item.find('=');
    if (eq != std::string_view::npos && item.substr(0, eq) == name) {
      return percentDecode(item.substr(eq + 1), form);
    }
  }
  return "";
}

// The signed-in user, from the `user` cookie.
std::string userOf(const ServerRequest& req) {
  return findParam(req.header("cookie"), "user", ';', false);
}

// The headers for a call to an upstream: the propagated ones, with end-user from the cookie.
HeaderVector forwardHeaders(const ServerRequest& req) {
  HeaderVector headers = propagatedHeaders(req);
  std::string user = userOf(req);
  if (!user.empty()) {
    std::erase_if(headers,
                  [](const auto& h) { return http::equalsIgnoreCase(h.first, "end-user"); });
    headers.emplace_back("end-user", user);
  }
  return headers;
}

// An upstream's answer as productpage uses it: the status (the upstream's, or 500 when none
// came, as Istio's productpage reports it) and the parsed JSON object on success.
struct Fetched {
  int status = 500;
  boost::json::object object;
  bool ok() const { return status == 200; }
};

Fetched fetch(const Upstream& upstream, const std::string& path, const HeaderVector& headers) {
  Fetched f;
  auto resp = httpGet(upstream, path, headers);
  if (!resp.ok()) return f;
  f.status = resp->status;
  if (f.status != 200) return f;
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(resp->body, ec);
  if (ec || !v.is_object()) {
    f.status = 500;
    return f;
  }
  f.object = std::move(v.as_object());
  return f;
}

// A JSON scalar as text for the page: strings unquoted.
std::string scalarText(const boost::json::value* v) {
  if (!v) return "";
  if (const auto* s = v->if_string()) return std::string(s->data(), s->size());
  return boost::json::serialize(*v);
}

std::string detailsHtml(const Fetched& details) {
  if (!details.ok()) {
    return std::string("<h4>Error fetching product details!</h4>\n<p class=\"error\">") +
           kDetailsUnavailable + "</p>\n";
  }
  static constexpr std::pair<const char*, const char*> kFields[] = {
      {"Author", "author"},   {"Year", "year"},           {"Type", "type"},
      {"Pages", "pages"},     {"Publisher", "publisher"}, {"Language", "language"},
      {"ISBN-10", "ISBN-10"}, {"ISBN-13", "ISBN-13"},
  };
  std::string html = "<h4>Book Details</h4>\n<dl>\n";
  for (const auto& [label, key] : kFields) {
    html += std::string("<dt>") + label + ":</dt><dd>" +
            htmlEscape(scalarText(details.object.if_contains(key))) + "</dd>\n";
  }
  return html + "</dl>\n";
}

std::string starsHtml(const boost::json::object& rating) {
  const auto* stars = rating.if_contains("stars");
  if (stars && stars->is_int64()) {
    int n = static_cast<int>(std::clamp<int64_t>(stars->as_int64(), 0, 5));
    std::string html =
        "<font color=\"" + htmlEscape(scalarText(rating.if_contains("color"))) + "\">";
    for (int i = 0; i < 5; ++i) {
      html += i < n ? "<span class=\"glyphicon glyphicon-star\"></span>"
                    : "<span class=\"glyphicon glyphicon-star-empty\"></span>";
    }
    return html + "</font>\n";
  }
  if (const auto* error = rating.if_contains("error")) {
    return "<p><i>" + htmlEscape(scalarText(error)) + "</i></p>\n";
  }
  return "";
}

std::string reviewsHtml(const Fetched& reviews) {
  if (!reviews.ok()) {
    return std::string("<h4>Error fetching product reviews!</h4>\n<p class=\"error\">") +
           kReviewsUnavailable + "</p>\n";
  }
  std::string html = "<h4>Book Reviews</h4>\n";
  const auto* list = reviews.object.if_contains("reviews");
  if (list && list->is_array()) {
    for (const auto& r : list->get_array()) {
      const auto* review = r.if_object();
      if (!review) continue;
      html += "<blockquote>\n<p>" + htmlEscape(scalarText(review->if_contains("text"))) +
              "</p>\n<small>" + htmlEscape(scalarText(review->if_contains("reviewer"))) +
              "</small>\n";
      const auto* rating = review->if_contains("rating");
      if (rating && rating->is_object()) html += starsHtml(rating->get_object());
      html += "</blockquote>\n";
    }
  }
  if (const auto* pod = reviews.object.if_contains("podname")) {
    html += "<dl><dt>Reviews served by:</dt><dd><u>" + htmlEscape(scalarText(pod)) + "</u></dd>";
    if (const auto* version = reviews.object.if_contains("version")) {
      html += "<dd>version " + htmlEscape(scalarText(version)) + "</dd>";
    }
    html += "</dl>\n";
  }
  return html;
}

std::string signInHtml(const std::string& user) {
  if (!user.empty()) {
    return "<p>Signed in as <b>" + htmlEscape(user) + "</b> <a href=\"/logout\">Sign out</a></p>\n";
  }
  return "<form method=\"post\" action=\"/login\">\n"
         "<input type=\"text\" name=\"username\" placeholder=\"User Name\">\n"
         "<input type=\"password\" name=\"passwd\" placeholder=\"Password\">\n"
         "<button type=\"submit\">Sign in</button>\n</form>\n";
}

ServerResponse productPage(const ProductpageConfig& config, const ServerRequest& req) {
  HeaderVector headers = forwardHeaders(req);
  Fetched details = fetch(config.details, "/details/0", headers);
  Fetched reviews = fetch(config.reviews, "/reviews/0", headers);
  std::string html =
      "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n"
      "<title>Simple Bookstore App</title>\n</head>\n<body>\n<nav><b>BookInfo Sample</b></nav>\n";
  html += signInHtml(userOf(req));
  html += std::string("<h3>") + kTitle + "</h3>\n<p>" + kDescriptionHtml + "</p>\n";
  html += "<div id=\"details\">\n" + detailsHtml(details) + "</div>\n";
  html += "<div id=\"reviews\">\n" + reviewsHtml(reviews) + "</div>\n</body>\n</html>\n";
  return {200, "text/html; charset=utf-8", std::move(html), {}};
}

std::string productsJson() {
  return "[{\"id\":0,\"title\":" + jsonQuote(kTitle) +
         ",\"descriptionHtml\":" + jsonQuote(kDescriptionHtml) + "}]";
}

// GET /api/v1/products/{id}[/reviews|/ratings]: the upstream's JSON, or Istio's error object
// with the upstream's status (500 when none answered).
ServerResponse productApi(const ProductpageConfig& config, const ServerRequest& req,
                          std::string_view rest) {
  size_t slash = rest.find('/');
  std::string_view id_text = rest.substr(0, slash);
  std::string_view what = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
  int id = 0;
  if (!parseProductId(id_text, &id))
    return json(400, "{\"error\":\"please provide numeric product ID\"}");
  const Upstream* upstream = nullptr;
  std::string path;
  const char* error = nullptr;
  if (what.empty()) {
    upstream = &config.details;
    path = "/details/";
    error = kDetailsUnavailable;
  } else if (what == "reviews") {
    upstream = &config.reviews;
    path = "/reviews/";
    error = kReviewsUnavailable;
  } else if (what == "ratings") {
    upstream = &config.ratings;
    path = "/ratings/";
    error = kRatingsUnavailable;
  } else {
    return json(404, "{\"error\":\"Not found\"}");
  }
  Fetched f = fetch(*upstream, path + std::to_string(id), forwardHeaders(req));
  if (!f.ok()) return json(f.status, std::string("{\"error\":\"") + error + "\"}");
  return json(200, boost::json::serialize(f.object));
}

}  // namespace

Handler makeProductpageHandler(ProductpageConfig config) {
  return [config = std::move(config)](const ServerRequest& req) -> ServerResponse {
    std::string_view path = req.path;
    if (path == "/" || path == "/index.html") {
      return {200,
              "text/html; charset=utf-8",
              "<!DOCTYPE html>\n<html><head><title>Simple Bookstore App</title></head><body>\n"
              "<h3>Hello! This is a simple bookstore application consisting of four services "
              "(productpage, details, reviews, ratings).</h3>\n"
              "<p><a href=\"/productpage\">Normal user</a> | "
              "<a href=\"/api/v1/products\">API</a></p>\n</body></html>\n",
              {}};
    }
    if (path == "/health") return json(200, "{\"status\":\"Product page is healthy\"}");
    if (path == "/productpage") return productPage(config, req);
    if (path == "/login") {
      if (req.method != "POST") return {405, "text/plain", "use POST\n", {{"allow", "POST"}}};
      std::string user = findParam(req.body, "username", '&', true);
      if (user.empty()) return redirect("/productpage", "user=; Path=/; Max-Age=0");
      return redirect("/productpage", "user=" + percentEncode(user) + "; Path=/");
    }
    if (path == "/logout") return redirect("/productpage", "user=; Path=/; Max-Age=0");
    if (path == "/api/v1/products") return json(200, productsJson());
    if (path.starts_with("/api/v1/products/")) {
      return productApi(config, req, path.substr(sizeof("/api/v1/products/") - 1));
    }
    return {404, "text/plain", "not found\n", {}};
  };
}

}  // namespace mesh::bookinfo
