# Ruby side of bench/jobs.py: the same job classes as bench/python_jobs.py.
require "sidekiq"
Redis.silence_deprecations = true if Redis.respond_to?(:silence_deprecations=)
Sidekiq.logger.level = ENV.fetch("SIDEKIQ_LOG_LEVEL", "info") == "info" ? Logger::INFO : Logger::ERROR

class NoopJob
  include Sidekiq::Worker
  def perform(*args)
  end
end

# Records how long the job waited between enqueue (args[0], epoch seconds) and its start.
class LatencyJob
  include Sidekiq::Worker
  def perform(enqueued)
    waited = Time.now.to_f - enqueued
    Sidekiq.redis { |conn| conn.rpush("latencies", waited.to_s) }
  end
end
