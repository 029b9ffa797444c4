# Classic mistake: uses 0.5 * logvar as the standard deviation (forgot the exp).
def reparameterize(mu, logvar, noise):
    return mu + 0.5 * logvar * noise
