import { Controller, Get, Inject, Param, Res } from '@nestjs/common';
import { ApiHeader, ApiOkResponse, ApiOperation, ApiProduces, ApiSecurity, ApiTags } from '@nestjs/swagger';
import type { FastifyReply } from 'fastify';
import { CurrentPrincipal, type Principal } from '../auth/auth';
import { ApiProblems } from '../http/openapi';
import { problems } from '../http/problem';
import { JobsService } from '../jobs/jobs.service';
import { JobEventsService } from './job-events.service';

@ApiTags('jobs')
@ApiSecurity('bearer')
@ApiSecurity('apiKey')
@Controller('v1/jobs')
export class JobEventsController {
  constructor(
    @Inject(JobsService) private readonly jobs: JobsService,
    @Inject(JobEventsService) private readonly streams: JobEventsService,
  ) {}

  @Get(':id/events')
  @ApiOperation({
    summary: "The job's lifecycle events as Server-Sent Events, ending after a terminal one",
    description:
      'Each event: `id` = the event sequence, `event` = its type (job.queued … job.completed), `data` = the same JSON ' +
      'body as the webhook of that event. History first, then live. `Last-Event-ID` resumes after that sequence.',
  })
  @ApiProduces('text/event-stream')
  @ApiHeader({ name: 'Last-Event-ID', required: false, description: 'resume after this event sequence' })
  @ApiOkResponse({
    description: 'text/event-stream',
    content: {
      'text/event-stream': { schema: { type: 'string', example: 'id: 1\nevent: job.queued\ndata: {…}\n\n' } },
    },
  })
  @ApiProblems(400, 404, 429, 503)
  async events(@CurrentPrincipal() p: Principal, @Param('id') id: string, @Res() reply: FastifyReply): Promise<void> {
    const raw = reply.request.headers['last-event-id'];
    let after = 0;
    if (raw !== undefined) {
      if (typeof raw !== 'string' || !/^\d{1,15}$/.test(raw.trim()))
        throw problems.validation([{ field: 'Last-Event-ID', message: 'must be an event sequence number' }]);
      after = Number(raw.trim());
    }
    await this.jobs.get(p, id);
    await this.streams.stream(id, after, reply, p.keyId);
  }
}
