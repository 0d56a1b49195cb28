// Standard reason phrases (RFC 9110 section 15), for status lines the proxy writes itself.
#pragma once

#include <string_view>

namespace mesh::http {

std::string_view reasonPhrase(int status);

}  // namespace mesh::http
