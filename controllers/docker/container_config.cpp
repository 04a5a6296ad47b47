#include "controllers/docker/container_config.hpp"

#include <cmath>
#include <set>
#include <string_view>

#include <sodium.h>

#include "controllers/docker/secret_files.hpp"

namespace foundationd::docker {
namespace {

using nlohmann::json;

std::int64_t nanos(config::Duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// A Value in canonical form: its text, or {"sensitive": digest} when it
// references a credential. The digest covers every segment, so a literal
// prefix change and a rotation both change it.
json canonicalValue(const config::Value& v, const SecretResolver& secrets) {
  if (!v.sensitive()) return v.display();
  std::string material;
  for (const auto& seg : v.segments) {
    if (const auto* text = std::get_if<std::string>(&seg)) {
      material += "t:" + *text + "\n";
    } else {
      const auto& ref = std::get<config::CredentialRef>(seg);
      auto d = secrets.digest(ref);
      material += "c:" + ref.name + "." + ref.field + "=" + (d ? *d : std::string("pending")) + "\n";
    }
  }
  return json{{"sensitive", sha256Hex(material)}};
}

Result<std::string> resolveValue(const config::Value& v, const SecretResolver& secrets,
                                 const std::string& where) {
  config::CredentialRef ref;
  auto out = resolveSecrets(v, secrets, &ref);
  if (!out) {
    return Error::make(ErrorCode::invalid_argument,
                       where + " needs credential " + ref.name + "." + ref.field +
                           ", which is not available (is the state unlocked and the "
                           "credential generated?)");
  }
  return std::move(*out);
}

std::string portKey(const config::PortMapping& p) {
  return std::to_string(p.containerPort) + "/" + p.protocol;
}

std::string portText(const config::PortMapping& p) {
  std::string s;
  if (!p.hostIp.empty()) {
    s += p.hostIp.find(':') != std::string::npos ? "[" + p.hostIp + "]" : p.hostIp;
    s += ":";
  }
  if (p.hostPort) s += std::to_string(*p.hostPort) + ":";
  return s + portKey(p);
}

std::string mountText(const config::Mount& m) {
  return m.source + ":" + m.target + (m.readOnly ? ":ro" : "");
}

std::string render(const json& j) {
  if (j.is_null()) return "(none)";
  if (j.is_object() && j.contains("sensitive")) return "(sensitive)";
  if (j.is_string()) return j.dump();
  return j.dump();
}

bool isSensitive(const json& j) { return j.is_object() && j.contains("sensitive"); }

}  // namespace

std::string sha256Hex(const std::string& text) {
  unsigned char out[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(out, reinterpret_cast<const unsigned char*>(text.data()), text.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(sizeof out * 2);
  for (unsigned char b : out) {
    hex += kHex[b >> 4];
    hex += kHex[b & 0xf];
  }
  return hex;
}

Desired desiredContainer(const config::ContainerSpec& c, const SecretResolver& secrets) {
  json j = json::object();
  j["image"] = c.image;
  if (c.command) j["command"] = *c.command;
  if (c.entrypoint) j["entrypoint"] = *c.entrypoint;
  if (!c.env.empty()) {
    json env = json::object();
    for (const auto& [k, v] : c.env) env[k] = canonicalValue(v, secrets);
    j["env"] = env;
  }
  if (!c.secretFiles.empty()) {
    json files = json::object();
    for (const auto& [path, v] : c.secretFiles) files[path] = canonicalValue(v, secrets);
    j["secret_files"] = files;
  }
  if (!c.networks.empty()) {
    json nets = json::array();
    for (const auto& n : c.networks) {
      json e{{"name", n.network}};
      if (!n.aliases.empty()) e["aliases"] = n.aliases;
      nets.push_back(e);
    }
    j["networks"] = nets;
  }
  if (!c.volumes.empty()) {
    json vols = json::array();
    for (const auto& m : c.volumes) vols.push_back(mountText(m));
    j["volumes"] = vols;
  }
  if (!c.ports.empty()) {
    json ports = json::array();
    for (const auto& p : c.ports) ports.push_back(portText(p));
    j["ports"] = ports;
  }
  if (c.restart != "no") j["restart"] = c.restart;
  if (c.user) j["user"] = *c.user;
  if (c.healthcheck) {
    json h{{"test", c.healthcheck->test}};
    if (c.healthcheck->interval) h["interval_ms"] = c.healthcheck->interval->count();
    if (c.healthcheck->timeout) h["timeout_ms"] = c.healthcheck->timeout->count();
    if (c.healthcheck->startPeriod) h["start_period_ms"] = c.healthcheck->startPeriod->count();
    if (c.healthcheck->retries) h["retries"] = *c.healthcheck->retries;
    j["healthcheck"] = h;
  }
  if (!c.labels.empty()) j["labels"] = c.labels;
  if (c.memoryBytes) j["memory"] = *c.memoryBytes;
  if (c.cpus) j["nano_cpus"] = static_cast<std::int64_t>(std::llround(*c.cpus * 1e9));
  if (c.readOnly) j["read_only"] = true;
  if (c.privileged) j["privileged"] = true;
  if (!c.capAdd.empty()) j["cap_add"] = c.capAdd;
  if (!c.capDrop.empty()) j["cap_drop"] = c.capDrop;
  if (c.stopTimeout) j["stop_timeout_ms"] = c.stopTimeout->count();
  if (!c.tmpfs.empty()) j["tmpfs"] = c.tmpfs;
  return Desired{j, sha256Hex(j.dump())};
}

Desired desiredNetwork(const config::NetworkSpec& n) {
  json j{{"driver", n.driver}};
  if (n.internal) j["internal"] = true;
  if (n.subnet) j["subnet"] = *n.subnet;
  if (!n.labels.empty()) j["labels"] = n.labels;
  return Desired{j, sha256Hex(j.dump())};
}

Desired desiredVolume(const config::VolumeSpec& v) {
  json j{{"driver", v.driver}};
  if (!v.labels.empty()) j["labels"] = v.labels;
  return Desired{j, sha256Hex(j.dump())};
}

Labels ownedLabels(const std::map<std::string, std::string>& userLabels,
                   const std::string& project, const Desired& desired) {
  Labels labels(userLabels.begin(), userLabels.end());
  labels[kLabelManaged] = "true";
  labels[kLabelProject] = project;
  labels[kLabelHash] = desired.hash;
  labels[kLabelConfig] = desired.canonical.dump();
  return labels;
}

Result<json> containerCreateBody(const config::ContainerSpec& c, const std::string& project,
                                 const Desired& desired, const SecretResolver& secrets,
                                 const std::string& secretsDir) {
  json body = json::object();
  body["Image"] = c.image;
  if (c.command) body["Cmd"] = *c.command;
  if (c.entrypoint) body["Entrypoint"] = *c.entrypoint;
  json env = json::array();
  for (const auto& [k, v] : c.env) {
    auto value = resolveValue(v, secrets, "env " + k + " of container " + c.name);
    if (!value) return std::move(value).error();
    env.push_back(k + "=" + value.value());
  }
  body["Env"] = env;
  body["Labels"] = ownedLabels(c.labels, project, desired);
  if (c.user) body["User"] = *c.user;
  if (c.stopTimeout) {
    body["StopTimeout"] = std::chrono::duration_cast<std::chrono::seconds>(*c.stopTimeout).count();
  }
  if (c.healthcheck) {
    json h{{"Test", c.healthcheck->test}};
    if (c.healthcheck->interval) h["Interval"] = nanos(*c.healthcheck->interval);
    if (c.healthcheck->timeout) h["Timeout"] = nanos(*c.healthcheck->timeout);
    if (c.healthcheck->startPeriod) h["StartPeriod"] = nanos(*c.healthcheck->startPeriod);
    if (c.healthcheck->retries) h["Retries"] = *c.healthcheck->retries;
    body["Healthcheck"] = h;
  }

  json host = json::object();
  json binds = json::array();
  for (const auto& m : c.volumes) binds.push_back(mountText(m));
  for (const auto& b : secretFileBinds(c, secretsDir)) binds.push_back(b);
  host["Binds"] = binds;
  if (!c.ports.empty()) {
    json exposed = json::object();
    json bindings = json::object();
    for (const auto& p : c.ports) {
      exposed[portKey(p)] = json::object();
      json b{{"HostIp", p.hostIp},
             {"HostPort", p.hostPort ? std::to_string(*p.hostPort) : std::string()}};
      bindings[portKey(p)].push_back(b);
    }
    body["ExposedPorts"] = exposed;
    host["PortBindings"] = bindings;
  }
  host["RestartPolicy"] = json{{"Name", c.restart}};
  if (c.memoryBytes) host["Memory"] = *c.memoryBytes;
  if (c.cpus) host["NanoCpus"] = static_cast<std::int64_t>(std::llround(*c.cpus * 1e9));
  host["ReadonlyRootfs"] = c.readOnly;
  host["Privileged"] = c.privileged;
  if (!c.capAdd.empty()) host["CapAdd"] = c.capAdd;
  if (!c.capDrop.empty()) host["CapDrop"] = c.capDrop;
  if (!c.tmpfs.empty()) {
    json tmpfs = json::object();
    for (const auto& t : c.tmpfs) {
      auto colon = t.find(':');
      tmpfs[t.substr(0, colon)] = colon == std::string::npos ? "" : t.substr(colon + 1);
    }
    host["Tmpfs"] = tmpfs;
  }
  if (!c.networks.empty()) {
    const auto& first = c.networks.front();
    host["NetworkMode"] = first.network;
    json endpoint = json::object();
    if (!first.aliases.empty()) endpoint["Aliases"] = first.aliases;
    body["NetworkingConfig"] = json{{"EndpointsConfig", json{{first.network, endpoint}}}};
  }
  body["HostConfig"] = host;
  return body;
}

std::vector<config::NetworkAttachment> extraNetworks(const config::ContainerSpec& c) {
  if (c.networks.size() <= 1) return {};
  return {c.networks.begin() + 1, c.networks.end()};
}

json networkCreateBody(const config::NetworkSpec& n, const std::string& project,
                       const Desired& desired) {
  json body{{"Name", n.name},
            {"Driver", n.driver},
            {"Internal", n.internal},
            {"CheckDuplicate", true},
            {"Labels", ownedLabels(n.labels, project, desired)}};
  if (n.subnet) {
    body["IPAM"] = json{{"Driver", "default"}, {"Config", json::array({{{"Subnet", *n.subnet}}})}};
  }
  return body;
}

json volumeCreateBody(const config::VolumeSpec& v, const std::string& project,
                      const Desired& desired) {
  return json{{"Name", v.name}, {"Driver", v.driver},
              {"Labels", ownedLabels(v.labels, project, desired)}};
}

std::vector<FieldChange> diffCanonical(const json& before, const json& after) {
  std::vector<FieldChange> out;
  std::set<std::string> keys;
  for (const auto& [k, _] : before.items()) keys.insert(k);
  for (const auto& [k, _] : after.items()) keys.insert(k);
  static const json kNull;
  for (const auto& key : keys) {
    const json& b = before.contains(key) ? before.at(key) : kNull;
    const json& a = after.contains(key) ? after.at(key) : kNull;
    if (b == a) continue;
    // Maps of named entries (env, labels, secret_files) diff per entry.
    if ((b.is_object() || b.is_null()) && (a.is_object() || a.is_null()) &&
        (key == "env" || key == "labels" || key == "secret_files")) {
      std::set<std::string> sub;
      if (b.is_object()) for (const auto& [k, _] : b.items()) sub.insert(k);
      if (a.is_object()) for (const auto& [k, _] : a.items()) sub.insert(k);
      for (const auto& k : sub) {
        const json& sb = b.is_object() && b.contains(k) ? b.at(k) : kNull;
        const json& sa = a.is_object() && a.contains(k) ? a.at(k) : kNull;
        if (sb == sa) continue;
        out.push_back({key + "." + k, render(sb), render(sa), isSensitive(sb) || isSensitive(sa)});
      }
      continue;
    }
    out.push_back({key, render(b), render(a), isSensitive(b) || isSensitive(a)});
  }
  return out;
}

std::optional<std::string> resolveSecrets(const config::Value& v, const SecretResolver& secrets,
                                          config::CredentialRef* missing) {
  std::string out;
  for (const auto& seg : v.segments) {
    if (const auto* text = std::get_if<std::string>(&seg)) {
      out += *text;
      continue;
    }
    const auto& ref = std::get<config::CredentialRef>(seg);
    auto value = secrets.value(ref);
    if (!value) {
      if (!out.empty()) sodium_memzero(out.data(), out.size());
      if (missing != nullptr) *missing = ref;
      return std::nullopt;
    }
    out += *value;
    sodium_memzero(value->data(), value->size());
  }
  return out;
}

std::optional<std::string> imagePinProblem(const std::string& pinned, const std::string& liveImage,
                                           const std::string& liveImageId) {
  auto isDigest = [](std::string_view d) {
    if (d.size() != 7 + 64 || d.rfind("sha256:", 0) != 0) return false;
    return d.substr(7).find_first_not_of("0123456789abcdef") == std::string_view::npos;
  };
  const std::string runs = liveImage == liveImageId || liveImage.empty()
                               ? liveImageId
                               : liveImage + " (" + liveImageId + ")";
  if (isDigest(pinned)) {
    if (liveImageId == pinned) return std::nullopt;
    return "runs image " + runs + ", not the pinned image ID " + pinned;
  }
  const auto at = pinned.rfind('@');
  if (at == std::string::npos || !isDigest(std::string_view(pinned).substr(at + 1)))
    return std::nullopt;  // a tag: followed as the Engine resolves it
  if (liveImage == pinned) return std::nullopt;
  return "runs image " + runs + ", not the pinned digest " + pinned;
}

}  // namespace foundationd::docker
