// Header fields as views into the bytes they were parsed from. A HeaderList is reused across
// messages on a connection, so the common path allocates nothing once it has warmed up.
#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

namespace mesh::http {

struct Header {
  std::string_view name;
  std::string_view value;
};

// ASCII case-insensitive equality (header names, tokens).
inline bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    unsigned char x = static_cast<unsigned char>(a[i]);
    unsigned char y = static_cast<unsigned char>(b[i]);
    if (x == y) continue;
    if ((x | 0x20) != (y | 0x20) || (x | 0x20) < 'a' || (x | 0x20) > 'z') return false;
  }
  return true;
}

inline char toLowerAscii(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

class HeaderList {
 public:
  using const_iterator = std::vector<Header>::const_iterator;

  void clear() { items_.clear(); }
  void reserve(size_t n) { items_.reserve(n); }
  void swap(HeaderList& other) noexcept { items_.swap(other.items_); }
  void add(std::string_view name, std::string_view value) { items_.push_back({name, value}); }
  size_t size() const { return items_.size(); }
  bool empty() const { return items_.empty(); }
  const Header& operator[](size_t i) const { return items_[i]; }
  const_iterator begin() const { return items_.begin(); }
  const_iterator end() const { return items_.end(); }

  // First field with this name (ASCII case-insensitive), or nullptr.
  const Header* find(std::string_view name) const {
    for (const auto& h : items_) {
      if (equalsIgnoreCase(h.name, name)) return &h;
    }
    return nullptr;
  }
  // Value of the first field with this name, or an empty view.
  std::string_view get(std::string_view name) const {
    const Header* h = find(name);
    return h ? h->value : std::string_view();
  }
  bool has(std::string_view name) const { return find(name) != nullptr; }

 private:
  std::vector<Header> items_;
};

}  // namespace mesh::http
