// Boost.JSON's implementation, compiled once for the sample (header-only mode: no library to
// link). The services use <boost/json.hpp> with its non-throwing parse.
#include <boost/json/src.hpp>
