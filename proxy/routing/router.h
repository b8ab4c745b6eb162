// Request routing of an HTTP listener: the first route whose match accepts the request.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/http1/parser.h"
#include "proxy/routing/config.h"

namespace meshgate::proxy {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

// The route for a request, or null (404). `target` is the request-target as received;
// host, path and query come from it and from the Host header.
const Route* matchRoute(const Listener& listener, const http1::MessageHead& head,
                        std::string_view target, const HeaderList& headers);

// Whether `route` alone accepts the request (host included): the first route of a listener
// for which this holds is the one matchRoute() returns.
bool routeMatches(const Route& route, const http1::MessageHead& head, std::string_view target,
                  const HeaderList& headers);

// The consistent-hash key of a request for `cluster` (its header, or its cookie), if
// present.
std::optional<std::string_view> hashKeyOf(const Cluster& cluster, const HeaderList& headers);

// Splits an origin-form target into path and query ("/a?b=1" -> "/a", "b=1").
std::pair<std::string_view, std::string_view> splitTarget(std::string_view target);
// The value of a query parameter (no percent-decoding), if present.
std::optional<std::string_view> queryParam(std::string_view query, std::string_view name);

}  // namespace meshgate::proxy
