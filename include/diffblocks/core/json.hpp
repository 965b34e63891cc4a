#pragma once
// JSON from untrusted files: parsed with a depth bound and duplicate keys refused, and printed
// into messages by a bounded, non-recursive formatter.
//
// nlohmann's parser keeps its own stack, but dump(), operator== and copies recurse: a value
// nested 100k levels deep parses fine and then overflows the stack when an error message
// prints it. So documents nested deeper than kMaxJsonDepth are refused before they are parsed
// (a linear scan of the brackets), and messages print values with json_brief(), which walks an
// explicit stack and stops after a few hundred characters. nlohmann also keeps the last of
// duplicate keys silently, which would let a file say two things at once; a parser callback
// reports the first duplicate by name instead.
#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_set>
#include <vector>

#include "diffblocks/core/error.hpp"

namespace diffblocks {

/// Deepest nesting of arrays/objects accepted in any JSON the library reads. A diffusers
/// config needs 3 levels, a safetensors header 3.
constexpr std::size_t kMaxJsonDepth = 64;

/// `v` as compact JSON of at most about `max_chars` characters ("..." marks a cut) with
/// containers deeper than `max_depth` shown as [...] / {...}. Never recurses.
inline std::string json_brief(const nlohmann::json& v, std::size_t max_chars = 200, std::size_t max_depth = 8) {
  using json = nlohmann::json;
  struct Frame {
    const json* v;
    json::const_iterator it;
    bool first;
  };
  std::string out;
  std::vector<Frame> stack;
  auto scalar = [&](const json& s) { out += s.dump(-1, ' ', false, json::error_handler_t::replace); };
  auto open = [&](const json& c) {
    if (!c.is_object() && !c.is_array()) return scalar(c);
    const bool obj = c.is_object();
    if (c.empty()) {
      out += obj ? "{}" : "[]";
    } else if (stack.size() >= max_depth) {
      out += obj ? "{...}" : "[...]";
    } else {
      out += obj ? '{' : '[';
      stack.push_back(Frame{&c, c.cbegin(), true});
    }
  };
  open(v);
  while (!stack.empty() && out.size() <= max_chars) {
    Frame& f = stack.back();
    if (f.it == f.v->cend()) {
      out += f.v->is_object() ? '}' : ']';
      stack.pop_back();
      continue;
    }
    if (!f.first) out += ',';
    f.first = false;
    const json& child = *f.it;
    if (f.v->is_object()) {
      scalar(json(f.it.key()));
      out += ':';
    }
    ++f.it;  // before open(): pushing may move the frame
    open(child);
  }
  if (out.size() > max_chars) {
    std::size_t cut = max_chars;
    while (cut > 0 && (static_cast<unsigned char>(out[cut]) & 0xc0) == 0x80) --cut;  // not inside a UTF-8 character
    out.resize(cut);
    out += "...";
  }
  return out;
}

/// Parses `text` (from `origin`, a file name for messages) and returns the value; throws `Err`
/// naming `origin` when it is not JSON, nests deeper than kMaxJsonDepth or repeats a key in one
/// object. `what` says what the text is ("config", "header").
template <class Err>
nlohmann::json parse_json_checked(const std::string& text, const std::string& origin, const std::string& what) {
  using json = nlohmann::json;
  // Bracket depth outside strings: cheap, and bounds every later recursion.
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        throw Err(origin + ": " + what + " is nested deeper than " + std::to_string(kMaxJsonDepth) +
                  " levels (at byte " + std::to_string(i) + ")");
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  // Keys seen in each open object, and the key each was opened under (for the message).
  std::vector<std::unordered_set<std::string>> keys;
  std::vector<std::string> opened_under;
  std::string last_key, duplicate, duplicate_parent;
  bool found = false;
  auto callback = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
        keys.emplace_back();
        opened_under.push_back(last_key);
        break;
      case json::parse_event_t::object_end:
        if (!keys.empty()) keys.pop_back(), opened_under.pop_back();
        break;
      case json::parse_event_t::key:
        last_key = parsed.get<std::string>();
        if (!keys.empty() && !keys.back().insert(last_key).second && !found) {
          found = true;
          duplicate = last_key;
          duplicate_parent = keys.size() > 1 ? opened_under.back() : std::string();
        }
        break;
      default:
        break;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text, callback);
  } catch (const json::exception& e) {
    throw Err(origin + ": " + what + " is not valid JSON (" + e.what() + ")");
  }
  if (found) {
    throw Err(origin + ": " + what + " has the key '" + duplicate + "' twice" +
              (!duplicate_parent.empty() ? " (inside '" + duplicate_parent + "')" : std::string()) +
              "; JSON readers disagree on which one counts");
  }
  return j;
}

}  // namespace diffblocks
