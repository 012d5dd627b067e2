# Ruby side of the wire-compatibility tests: Sidekiq 6.4.1 job classes and configuration.
require "sidekiq"
require "sidekiq/api"
require "sidekiq/scheduled"
require "json"

namespace = ENV["SIDEKIQ_NAMESPACE"]
if namespace && !namespace.empty?
  require "redis-namespace"
  Sidekiq.configure_server { |config| config.redis = {url: ENV["REDIS_URL"], namespace: namespace} }
  Sidekiq.configure_client { |config| config.redis = {url: ENV["REDIS_URL"], namespace: namespace} }
end
Sidekiq.logger.level = Logger::WARN
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)

# Tests cannot wait Sidekiq's 10-15 s before the first poll of the schedule and retry sets.
Sidekiq.options[:poll_interval_average] = 0.5
class Sidekiq::Scheduled::Poller
  def initial_wait
  end
end

# Records its arguments, as JSON, at the end of the Redis list "results" (never namespaced).
class RecordJob
  include Sidekiq::Worker

  def perform(*args)
    Redis.new(url: ENV["REDIS_URL"]).rpush("results", JSON.generate(args))
  end
end

# Stand-ins for Python jobs, so Ruby code can call perform_async on them.
class PyRecord
  include Sidekiq::Worker
  sidekiq_options queue: "python"
end
